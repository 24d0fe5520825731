"""User profiles: the ``gold.user_profiles`` snapshot of a date (RFM, windowed activity,
attributes as of the date) and access to past snapshots."""
