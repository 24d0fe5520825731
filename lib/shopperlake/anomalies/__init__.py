"""Anomaly and abuse detection: broken feeds (``feed``); user-level detectors to come."""
