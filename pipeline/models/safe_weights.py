"""Refuse a detector checkpoint whose pickle would run code outside an Ultralytics model.

Ultralytics loads a ``.pt`` with ``torch.load(weights_only=False)``: unpickling can call any function
(``os.system`` in a ``__reduce__``). Before that happens, :func:`check_detector_checkpoint` lists the
globals the pickle references, without running them (``torch.serialization.
get_unsafe_globals_in_checkpoint``, torch >= 2.5), and accepts only what an Ultralytics checkpoint
holds: ``nn.Module`` classes of ``ultralytics.nn.modules`` / ``ultralytics.nn.tasks`` / ``torch.nn.modules``,
and the plain containers, paths, namespaces and numpy scalars/arrays that ultralytics saves beside the
model. Anything else, and any file that is not a torch zip checkpoint (raw pickle, the legacy
format), is a :class:`CheckpointError` (exit 8) unless the user passes ``--trust-weights``.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

from reidpipe.errors import CheckpointError

# module prefixes whose nn.Module subclasses an Ultralytics checkpoint pickles
MODULE_PREFIXES = ("ultralytics.nn.modules.", "ultralytics.nn.tasks.", "torch.nn.modules.")
# plain data ultralytics saves beside the model (train args, metrics, numpy scalars)
PLAIN_GLOBALS = frozenset(
    {
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
        "collections.OrderedDict",
        "collections.defaultdict",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "types.SimpleNamespace",
        "argparse.Namespace",
        "ultralytics.utils.IterableSimpleNamespace",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.ndarray",
        "numpy.dtype",
    }
)
HOW_TO_PROCEED = (
    "export it to ONNX where it was made (`yolo export model=FILE format=onnx`) and pass the "
    ".onnx, or pass --trust-weights if you made this file yourself"
)


def _is_module_class(name: str) -> bool:
    if not name.startswith(MODULE_PREFIXES):
        return False
    module, _, attr = name.rpartition(".")
    try:
        import torch

        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return False
    return isinstance(obj, type) and issubclass(obj, torch.nn.Module)


def allowed(name: str) -> bool:
    """Whether an Ultralytics checkpoint may reference the global ``module.name``."""
    return name in PLAIN_GLOBALS or name.startswith("numpy.dtypes.") or _is_module_class(name)


def unsafe_globals(path: str | Path) -> list[str]:
    """The globals of a torch zip checkpoint outside :func:`allowed`, without unpickling it."""
    import torch

    found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    return sorted(g for g in found if not allowed(g))


def check_detector_checkpoint(path: str | Path, trust: bool = False) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a torch zip checkpoint whose pickle references
    only what an Ultralytics model needs (or ``trust`` is set)."""
    if trust:
        return
    import torch

    if not hasattr(torch.serialization, "get_unsafe_globals_in_checkpoint"):
        raise CheckpointError(
            f"detector weights {path}: this torch ({torch.__version__}) cannot inspect a "
            f"checkpoint without running it (needs torch >= 2.5); {HOW_TO_PROCEED}"
        )
    if not zipfile.is_zipfile(path):
        raise CheckpointError(
            f"detector weights {path}: not a torch zip checkpoint (a raw pickle or the "
            f"legacy format, which cannot be checked without running it); {HOW_TO_PROCEED}"
        )
    try:
        bad = unsafe_globals(path)
    except Exception as exc:  # a corrupt zip or pickle
        raise CheckpointError(
            f"detector weights {path}: not a readable torch checkpoint ({type(exc).__name__}); {HOW_TO_PROCEED}"
        ) from None
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise CheckpointError(
            f"detector weights {path}: refused, its pickle would call {bad[0]}{more}, which "
            f"is not part of an Ultralytics model; {HOW_TO_PROCEED}"
        )
