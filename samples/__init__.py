"""Deterministic demo scene generator with ground truth (used by `reidpipe demo` and tests)."""
