"""The `reidpipe train` flags of the tests: a tiny model that trains in seconds on CPU."""

from __future__ import annotations

# no pretrained weights to download, the variants' tiny trunks, P x K = 2 x 2, no worker processes,
# no progress bars or TensorBoard files, on CPU
TINY_MODEL = (
    "model.pretrained=false",
    "model.options.tiny=true",
    "data.workers=0",
    "stages.*.p=2",
    "stages.*.k=2",
    "log.progress=false",
    "log.tensorboard=false",
    "device=cpu",
)


def set_flags(*assignments: str) -> list[str]:
    """``--set KEY=VALUE`` for each assignment, in order (a later one wins)."""
    return [arg for a in assignments for arg in ("--set", a)]


def tiny_train_flags(*extra: str) -> list[str]:
    """``--set`` flags of the tiny model, then ``extra`` assignments."""
    return set_flags(*TINY_MODEL, *extra)
