"""Analyst views: the SQL views over the lake's latest snapshots and the ``query`` job."""
