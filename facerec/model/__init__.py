"""Backbones, margin heads, training loops, metrics and the landmark autoencoder."""
