"""A training run's checkpoints, in one place: what ``last.pt`` / ``best.pt`` hold, how ``--resume``
reads them back, and how ``model.init`` (``--init``) starts a model from another run's weights.

Exact resume: ``last.pt`` holds the model, loss-set parameters, optimiser and grad-scaler state,
every RNG state, the stage index and epoch, the best result and the step counter. Samplers and
augmentations draw from ``(seed, stage, epoch)`` only, so a resumed run repeats the uninterrupted
run bit for bit on CPU. The RNG is restored where the uninterrupted run stood: at a stage boundary,
before the stage is built (building it draws the loss set's initial parameters); in the middle of
a stage, after it is built, as at the end of the last saved epoch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from reidpipe.errors import CheckpointError

if TYPE_CHECKING:
    from reidpipe.reid.base import ReIDModel
    from reidpipe.trainers.build import StageRun


# ------------------------------------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    """Every global RNG state (Python, NumPy, torch, CUDA) as tensors and plain values (``weights_only``
    loadable)."""
    np_state = cast(tuple, np.random.get_state())  # legacy=True (the default): the tuple form
    st = {
        "python": _to_lists(random.getstate()),
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
    }
    if torch.cuda.is_available():
        st["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return st


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(_to_tuples(st["python"]))
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


# ------------------------------------------------------------------------------------------- saving
def save_training_checkpoint(
    path: Path,
    model: ReIDModel,
    stage: StageRun,
    *,
    progress: dict[str, Any],
    loss_states: dict[str, dict],
    metrics: dict | None,
) -> Path:
    """Write ``path`` (atomically): the model and everything ``--resume`` needs. ``progress``: the
    ``training`` entry (stage index and name, epoch, step, best result, config, world size)."""
    from reidpipe.reid.checkpoint import save_checkpoint

    state = {
        "training": progress,
        "optimizer": stage.optimizer.state_dict(),
        "loss_optimizer": stage.loss_optimizer.state_dict() if stage.loss_optimizer is not None else None,
        "scaler": stage.scaler.state_dict() if stage.scaler.is_enabled() else None,
        "loss_set": stage.loss_set.state_dict(),
        "loss_states": loss_states,
        "rng": rng_state(),
        "metrics": metrics and {k: v for k, v in metrics.items() if k != "cmc"},
    }
    return save_checkpoint(path, model, **state)


# ------------------------------------------------------------------------------------------- init
def load_init_weights(model: ReIDModel, path: str) -> str:
    """Start ``model`` from a reidpipe checkpoint of its variant: every tensor of the same name and shape
    is loaded; the others (a classifier sized to another training set) stay as built. Returns the
    log line saying what was loaded."""
    from reidpipe.reid.checkpoint import read_checkpoint

    ck = read_checkpoint(path, map_location="cpu")
    if ck["variant"] != model.variant:
        raise CheckpointError(f"model.init {path} is a {ck['variant']!r} model, this run builds {model.variant!r}")
    own = model.state_dict()
    take = {k: v for k, v in ck["state_dict"].items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    if not take:
        raise CheckpointError(f"model.init {path}: no tensor fits this run's {model.variant!r} model")
    model.load_state_dict(take, strict=False)
    left = sorted(set(own) - set(take))
    return f"init from {path}: {len(take)} tensors loaded, {len(left)} as built {left[:3]}"


# ------------------------------------------------------------------------------------------- resume
@dataclass
class ResumePoint:
    """Where a resumed run continues: the first stage and its epochs already done, the counters and
    the checkpoint the stage's optimiser and RNG state come from."""

    stage_index: int = 0
    epoch: int = 0
    global_step: int = 0
    best: dict | None = None
    loss_states: dict[str, dict] = field(default_factory=dict)
    checkpoint: dict | None = None
    message: str = ""

    def checkpoint_for(self, stage_index: int) -> dict | None:
        """The checkpoint to restore when stage ``stage_index`` starts (only the resumed stage has one)."""
        return self.checkpoint if stage_index == self.stage_index else None

    def start_epoch(self, stage_index: int) -> int:
        """Epochs of stage ``stage_index`` already done."""
        return self.epoch if stage_index == self.stage_index else 0


def read_resume_point(path: Path, model: ReIDModel, stages: list[dict]) -> ResumePoint:
    """Load ``path`` (a ``last.pt``) into ``model`` and say where to continue; a checkpoint that is
    missing, weights-only, of another model or of another stage list is a ``CheckpointError``."""
    from reidpipe.reid.checkpoint import read_checkpoint

    if not path.exists():
        raise CheckpointError(f"--resume: no checkpoint {path} to continue from")
    ck = read_checkpoint(path, map_location="cpu")
    tr = ck.get("training")
    if not isinstance(tr, dict):
        raise CheckpointError(f"--resume: {path} holds no training state (a weights-only checkpoint)")
    if ck["variant"] != model.variant or int(ck["num_classes"]) != model.num_classes:
        raise CheckpointError(
            f"--resume: {path} is a {ck['variant']!r} model with {ck['num_classes']} classes, "
            f"this run builds {model.variant!r} with {model.num_classes}"
        )
    try:
        model.load_state_dict(ck["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"--resume: {path} does not match this run's model ({str(exc)[:200]})") from None
    names = [s["name"] for s in stages]
    si = int(tr["stage_index"])
    if si >= len(names) or names[si] != tr["stage"]:
        raise CheckpointError(
            f"--resume: {path} stopped in stage {tr['stage']!r} (#{si + 1}), "
            f"which this config does not have at that place (stages: {names})"
        )
    point = ResumePoint(global_step=int(tr["global_step"]), best=tr.get("best"), checkpoint=ck)
    point.loss_states = ck.get("loss_states") or {}
    epoch = int(tr["epoch"])
    if epoch >= int(stages[si]["epochs"]):  # the stage was done: continue with the next
        point.stage_index, point.epoch = si + 1, 0
        point.loss_states[tr["stage"]] = ck.get("loss_set") or {}
    else:
        point.stage_index, point.epoch = si, epoch
    point.message = f"resuming from {path}: stage {tr['stage']!r} epoch {epoch} done (step {point.global_step})"
    return point


def restore_stage(stage: StageRun, ck: dict) -> None:
    """Optimiser, loss-optimiser, grad-scaler and loss-set state of a stage resumed in its middle."""
    stage.optimizer.load_state_dict(ck["optimizer"])
    if stage.loss_optimizer is not None and ck.get("loss_optimizer"):
        stage.loss_optimizer.load_state_dict(ck["loss_optimizer"])
    if ck.get("scaler"):
        stage.scaler.load_state_dict(ck["scaler"])
    if ck.get("loss_set"):
        stage.loss_set.load_state_dict(ck["loss_set"])


def restore_rng(ck: dict | None) -> None:
    """The checkpoint's RNG state, when it has one."""
    if ck is not None and ck.get("rng"):
        set_rng_state(ck["rng"])
