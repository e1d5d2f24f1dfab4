"""Fairness audit: group metrics, disparities with confidence intervals, and their influence."""
