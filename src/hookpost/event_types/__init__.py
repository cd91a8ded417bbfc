"""Event types: the catalogue of what applications send, with a JSON Schema per version."""
