"""Audit plugins: fairness, privacy, data quality and explanations."""
