"""Multi-step jobs over directories (the primer, the VQ pipeline, the β sweep, the semi-supervised
grid, the tour): each composes the library's parts and writes its results to a folder; no model
imports them."""
