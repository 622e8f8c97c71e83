"""Evaluation that knows no model: metrics, verification protocols (LFW), the dlib reference embedder, NME, plots."""
