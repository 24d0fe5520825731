"""Operations on the lake itself rather than on its data's meaning: table maintenance
(``maintain``: compaction, Z-order, expiry of old partitions, VACUUM) and the erasure of users
(``erase``)."""
