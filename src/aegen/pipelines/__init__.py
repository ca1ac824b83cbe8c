"""Multi-step jobs over directories; each composes training and evaluation, none is imported by models."""
