"""Multi-step jobs over run directories; each composes training and evaluation."""
