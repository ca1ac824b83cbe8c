"""Benchmarks that print JSON: speed as ratios against a baseline measured in the same run.

This machine (and most laptops) is shared and noisy, so absolute images/s vary
from run to run; each case therefore measures its baseline in the same process,
interleaving the two so that drift in machine load hits both alike.
"""
