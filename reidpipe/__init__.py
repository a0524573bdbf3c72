"""reidpipe: multi-camera person tracking with re-identification.

The public API is pinned in ``__all__``. Names resolve lazily so that ``import reidpipe`` (and
``reidpipe --help``) stay instant; torch and friends load only when a model or pipeline is used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    # runtime
    "Pipeline": "reidpipe.pipeline.runner",
    "PipelineConfig": "reidpipe.pipeline.config",
    "write_trajectories": "reidpipe.pipeline.io.export",
    "read_trajectories": "reidpipe.pipeline.io.export",
    # models
    "list_variants": "reidpipe.reid.registry",
    "create_model": "reidpipe.reid.registry",
    "load_checkpoint": "reidpipe.reid.checkpoint",
    "save_checkpoint": "reidpipe.reid.checkpoint",
    # errors
    "ReidpipeError": "reidpipe.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reidpipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)
