"""Extractors of facial landmarks behind one small interface."""
