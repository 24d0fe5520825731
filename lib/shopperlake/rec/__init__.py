"""Recommender: interaction weighting, candidate sources, hybrid blend, offline evaluation."""
