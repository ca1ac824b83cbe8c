"""Priors over VQ-VAE code grids (kind "prior"): the autoregressive pixelcnn, pixelrnn and
transformer, and the parallel, masked maskgit."""
