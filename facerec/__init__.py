"""facerec: face recognition, data pipeline first."""
__version__ = "0.1.0"
