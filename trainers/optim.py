"""Optimisers and per-epoch learning-rate schedules of a training stage.

Schedules are pure functions of the 1-based epoch number (the learning rate is set at the start of
each epoch, as CLIP-ReID and BoT step their schedulers), so resuming needs no scheduler state:

- ``multistep`` (BoT / CLIP-ReID stage 2, ``WarmupMultiStepLR``): lr · warm · gamma^(#milestones ≤ e),
  warm = warmup_factor · (1 - e/W) + e/W for e < W (W = warmup_epochs), else 1.
- ``cosine`` (CLIP-ReID stage 1, timm ``CosineLRScheduler``): e < W: warmup_lr + e · (lr - warmup_lr)/W;
  else min_lr + ½ (lr - min_lr)(1 + cos(π e / epochs)).
- ``constant``: lr.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import torch

from reidpipe.errors import ConfigError


def lr_at(schedule: dict, base_lr: float, epoch: int, epochs: int) -> float:
    name = schedule.get("name", "multistep")
    warm = int(schedule.get("warmup_epochs") or 0)
    if name == "constant":
        return base_lr
    if name == "multistep":
        factor = 1.0
        if epoch < warm:
            alpha = epoch / warm
            factor = float(schedule.get("warmup_factor", 0.01)) * (1 - alpha) + alpha
        k = bisect.bisect_right(sorted(int(m) for m in schedule.get("milestones") or []), epoch)
        return base_lr * factor * float(schedule.get("gamma", 0.1)) ** k
    if name == "cosine":
        min_lr = float(schedule.get("min_lr", 0.0))
        if epoch < warm:
            w0 = schedule.get("warmup_lr")
            w0 = base_lr * float(schedule.get("warmup_factor", 0.01)) if w0 is None else float(w0)
            return w0 + epoch * (base_lr - w0) / warm
        return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * epoch / max(epochs, 1)))
    raise ConfigError(f"unknown schedule {name!r}; use multistep, cosine or constant")


def build_optimizer(named_params: list[tuple[str, torch.nn.Parameter]], opt: dict) -> torch.optim.Optimizer:
    """Parameter groups: biases get ``lr · bias_lr_factor`` and ``weight_decay_bias`` (BoT / CLIP-ReID)."""
    name = str(opt.get("name", "adam")).lower()
    lr = float(opt["lr"])
    groups: list[dict[str, Any]] = []
    for n, p in named_params:
        is_bias = n.endswith("bias")
        groups.append(
            {
                "params": [p],
                "name": n,
                "lr_factor": float(opt.get("bias_lr_factor", 1.0)) if is_bias else 1.0,
                "weight_decay": float(opt.get("weight_decay_bias" if is_bias else "weight_decay", 0.0)),
            }
        )
    if not groups:
        raise ConfigError("this stage has no trainable parameters")
    for g in groups:
        g["lr"] = lr * g["lr_factor"]
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(opt.get("betas", (0.9, 0.999))))
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(opt.get("betas", (0.9, 0.999))))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=float(opt.get("momentum", 0.9)))
    raise ConfigError(f"unknown optimizer {name!r}; use adam, adamw or sgd")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_factor", 1.0)
