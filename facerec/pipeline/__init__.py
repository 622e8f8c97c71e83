"""Offline batch stages: sources, ingest, extractors, landmarks, features, canonical shapes, Spark runner
(the geometry they apply lives in ``facerec.geometry``)."""
