"""What ``--resume`` and ``--init`` read back: the RNG state survives a weights-only file, a resumed
run continues at the right stage and epoch, and a checkpoint that does not fit is one clear error."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from reidpipe.errors import CheckpointError
from reidpipe.reid.checkpoint import save_checkpoint
from reidpipe.reid.registry import create_model
from reidpipe.trainers.checkpoint import load_init_weights, read_resume_point, rng_state, set_rng_state

STAGES = [{"name": "prompt", "epochs": 2}, {"name": "image", "epochs": 3}]


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_the_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    torch.save(rng_state(), tmp_path / "rng.pt")
    first = _draws()
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert _draws() == first


def _model(num_classes=4):
    torch.manual_seed(0)
    return create_model("clipreid", num_classes=num_classes, pretrained=False, tiny=True)


def _last(tmp_path, stage_index: int, epoch: int, stage: str | None = None):
    path = tmp_path / "last.pt"
    name = stage or STAGES[stage_index]["name"]
    training = {"stage_index": stage_index, "stage": name, "epoch": epoch, "global_step": 7, "best": None}
    save_checkpoint(path, _model(), training=training, loss_set={"w": torch.ones(2)}, loss_states={}, rng=rng_state())
    return path


def test_resume_continues_mid_stage_or_at_the_next_stage(tmp_path):
    mid = read_resume_point(_last(tmp_path, 1, 1), _model(), STAGES)
    assert (mid.stage_index, mid.epoch, mid.global_step) == (1, 1, 7)
    assert mid.checkpoint_for(1) is not None and mid.checkpoint_for(0) is None and mid.start_epoch(1) == 1
    done = read_resume_point(_last(tmp_path, 0, 2), _model(), STAGES)
    assert (done.stage_index, done.epoch) == (1, 0)  # the prompt stage was finished
    assert torch.equal(done.loss_states["prompt"]["w"], torch.ones(2))  # its loss set is carried
    assert "resuming from" in done.message and "stage 'prompt' epoch 2 done (step 7)" in done.message


def test_a_checkpoint_that_does_not_fit_the_run_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint .*last.pt to continue from"):
        read_resume_point(tmp_path / "last.pt", _model(), STAGES)
    with pytest.raises(CheckpointError, match="which this config does not have at that place"):
        read_resume_point(_last(tmp_path, 1, 1, stage="main"), _model(), STAGES)
    with pytest.raises(CheckpointError, match="with 4 classes, this run builds 'clipreid' with 9"):
        read_resume_point(_last(tmp_path, 1, 1), _model(9), STAGES)
    save_checkpoint(tmp_path / "weights.pt", _model())
    with pytest.raises(CheckpointError, match="holds no training state"):
        read_resume_point(tmp_path / "weights.pt", _model(), STAGES)


def test_init_loads_what_fits_and_keeps_a_classifier_of_another_size_as_built(tmp_path):
    save_checkpoint(tmp_path / "other.pt", _model(num_classes=10))
    model = _model(num_classes=4)
    torch.manual_seed(1)
    for p in model.parameters():
        p.data.add_(torch.rand_like(p))
    classifier = model.classifier.weight.detach().clone()
    line = load_init_weights(model, str(tmp_path / "other.pt"))
    assert "tensors loaded" in line and "classifier.weight" in line
    ref = _model(num_classes=10).state_dict()
    own = model.state_dict()
    assert torch.equal(own["bottleneck.weight"], ref["bottleneck.weight"])
    assert torch.equal(own["classifier.weight"], classifier)  # 4 classes here, 10 in the file: kept as built
    save_checkpoint(tmp_path / "mfa.pt", create_model("mfa", num_classes=4, pretrained=False, tiny=True))
    with pytest.raises(CheckpointError, match="is a 'mfa' model, this run builds 'clipreid'"):
        load_init_weights(model, str(tmp_path / "mfa.pt"))
