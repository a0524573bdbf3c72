"""Model variants. Importing this package registers every variant.

Each variant lives in ``reid/variants/<name>.py`` and calls
``reidpipe.reid.registry.register_variant(name, builder, description)`` at import time.
"""

from reidpipe.reid.variants import can_cma, clipreid, finetune, mfa, mscsa_tgi, pivl  # noqa: F401

VARIANT_MODULES = ("clipreid", "mscsa_tgi", "can_cma", "pivl", "mfa", "finetune")
