"""Autoregressive priors over VQ-VAE code grids: pixelcnn, pixelrnn, transformer (kind "prior")."""
