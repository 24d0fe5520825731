"""Sequence models over each user's event sequence: the sequence table first (issue #16)."""
