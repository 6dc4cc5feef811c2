"""Scoring model of the risk-score example (a vendored package)."""
