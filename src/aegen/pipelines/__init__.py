"""Multi-step jobs over directories, each composed of training and evaluation steps."""
