"""One module per CLI command; each defines ``register(app)`` and keeps its body thin."""
