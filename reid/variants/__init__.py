"""Model variants. Importing this package registers every variant module present.

Each variant lives in ``reid/variants/<name>.py`` and calls
``reidpipe.reid.registry.register_variant(name, builder, description)`` at import time. A module that
does not exist yet in this checkout is skipped (``ModuleNotFoundError`` for exactly that module);
any other import error propagates, so a broken variant is never silently missing.
"""

from __future__ import annotations

import importlib

VARIANT_MODULES = ("clipreid", "mscsa_tgi", "can_cma", "pivl", "mfa")

for _name in VARIANT_MODULES:
    _module = f"{__name__}.{_name}"
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as _exc:
        if _exc.name != _module:
            raise
del _name, _module
