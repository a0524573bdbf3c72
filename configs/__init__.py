"""YAML defaults shipped as package data (variants, datasets, pipeline)."""
