"""Optimisers and learning-rate schedules of a stage: the papers' warm-up and decay, bias parameter
groups, and a one-line error for an unknown name."""

from __future__ import annotations

import math

import pytest
import torch

from reidpipe.errors import ConfigError
from reidpipe.trainers.optim import build_optimizer, lr_at, set_lr


def test_schedules():
    ms = {"name": "multistep", "warmup_epochs": 10, "warmup_factor": 0.1, "milestones": [40, 70], "gamma": 0.1}
    assert lr_at(ms, 1.0, 1, 120) == pytest.approx(0.19)  # CLIP-ReID's WarmupMultiStepLR at epoch 1
    assert lr_at(ms, 1.0, 10, 120) == 1.0 and lr_at(ms, 1.0, 40, 120) == pytest.approx(0.1)
    assert lr_at(ms, 1.0, 70, 120) == pytest.approx(0.01)
    cos = {"name": "cosine", "warmup_epochs": 5, "warmup_lr": 1e-5, "min_lr": 1e-6}
    assert lr_at(cos, 3.5e-4, 0, 120) == pytest.approx(1e-5)
    assert lr_at(cos, 3.5e-4, 5, 120) == pytest.approx(1e-6 + 0.5 * (3.5e-4 - 1e-6) * (1 + math.cos(math.pi * 5 / 120)))
    assert lr_at(cos, 3.5e-4, 120, 120) == pytest.approx(1e-6)


def test_biases_get_their_own_learning_rate_factor_and_weight_decay():
    w, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = {"name": "sgd", "lr": 0.1, "bias_lr_factor": 2.0, "weight_decay": 5e-4, "weight_decay_bias": 0.0}
    optimizer = build_optimizer([("fc.weight", w), ("fc.bias", b)], opt)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert groups["fc.weight"]["lr"] == pytest.approx(0.1) and groups["fc.bias"]["lr"] == pytest.approx(0.2)
    assert groups["fc.weight"]["weight_decay"] == 5e-4 and groups["fc.bias"]["weight_decay"] == 0.0
    set_lr(optimizer, 0.01)  # the schedule's rate, the bias factor kept
    assert groups["fc.bias"]["lr"] == pytest.approx(0.02)


def test_unknown_optimiser_or_schedule_and_no_parameters_are_config_errors():
    p = torch.nn.Parameter(torch.ones(1))
    with pytest.raises(ConfigError, match="unknown optimizer 'rmsprop'; use adam, adamw or sgd"):
        build_optimizer([("w", p)], {"name": "rmsprop", "lr": 1e-3})
    with pytest.raises(ConfigError, match="this stage has no trainable parameters"):
        build_optimizer([], {"name": "adam", "lr": 1e-3})
    with pytest.raises(ConfigError, match="unknown schedule 'step'; use multistep, cosine or constant"):
        lr_at({"name": "step"}, 1.0, 1, 10)
