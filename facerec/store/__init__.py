"""Opening, validating and reading a store; the torch datasets and samplers."""
