"""Customer segments: k-means over profile features, named segments and their summary
(``gold.user_segments``, ``gold.segment_summary``)."""
