"""Evaluation: reconstruction metrics, sample scores and reports."""
