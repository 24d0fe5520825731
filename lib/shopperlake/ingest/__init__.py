"""Ingest: raw files → canonical bronze tables, with every bad row quarantined."""
