"""Offline batch stages: sources, extractors, pose, alignment, heatmaps, canonical shapes, Spark runner."""
