"""`--resume` continues exactly: 2 epochs straight == 1 epoch + resume 1 epoch, bit for bit on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from train_args import tiny_train_flags  # (tests/ is on sys.path)

from reidpipe.cli import main as cli
from reidpipe.reid.datasets.synthetic import write_dataset

TINY = tiny_train_flags("stages.*.eval=false", "stages.*.epochs=2", "stages.*.schedule.warmup_epochs=1")


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return write_dataset("market1501", root, ids=4, test_ids=2, per_cam=2, cams=2, size=(64, 32)).parent


def _train(market, run, *extra):
    return cli(
        [
            "train",
            "--variant",
            "mfa",
            "--dataset",
            "market1501",
            "--data-root",
            str(market),
            "--output",
            str(run),
            *TINY,
            *extra,
        ]
    )


def test_resume_is_exact(market, tmp_path):
    assert _train(market, tmp_path / "straight") == 0
    assert _train(market, tmp_path / "split", "--set", "stop_after_epochs=1") == 0
    half = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert half["training"]["epoch"] == 1
    assert _train(market, tmp_path / "split", "--resume") == 0
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert a["training"]["global_step"] == b["training"]["global_step"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
    for k in a["loss_set"]:  # center-loss centers too
        assert torch.equal(a["loss_set"][k], b["loss_set"][k]), k
    # and training did move the weights
    assert not all(
        torch.equal(half["state_dict"][k], b["state_dict"][k])
        for k in b["state_dict"]
        if b["state_dict"][k].is_floating_point()
    )


def test_resume_without_checkpoint_is_a_clear_error(market, tmp_path, capsys):
    rc = cli(
        [
            "train",
            "--variant",
            "mfa",
            "--dataset",
            "market1501",
            "--data-root",
            str(market),
            "--output",
            str(tmp_path / "empty"),
            "--resume",
            *TINY,
        ]
    )
    assert rc == 8
    assert "last.pt" in capsys.readouterr().err


def test_torchrun_two_processes_gloo(market, tmp_path):
    run = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "reidpipe",
        "train",
        "--variant",
        "mfa",
        "--dataset",
        "market1501",
        "--data-root",
        str(market),
        "--output",
        str(run),
        *TINY,
        "--set",
        "stages.*.epochs=1",
        "--set",
        "stages.*.eval=true",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    envj = json.loads((run / "environment.json").read_text())
    assert envj["world_size"] == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] and summary["best"] is not None
    log = (run / "train.log").read_text()
    # 16 images, P x K = 2 x 2 -> 4 batches per epoch, 2 per rank
    assert "2 iterations/epoch" in log
    assert torch.load(run / "last.pt", weights_only=True)["training"]["world_size"] == 2


def test_frozen_prefixes_keep_weights_and_batchnorm_statistics(market, tmp_path):
    from reidpipe.reid.registry import create_model
    from reidpipe.trainers.runtime import seed_everything

    run = tmp_path / "frozen"
    assert _train(market, run, "--set", "stages.*.epochs=1", "--set", "stages.main.frozen=[trunk.]") == 0
    trained = torch.load(run / "last.pt", weights_only=True)["state_dict"]
    seed_everything(1)  # the run's seed: the same initial weights
    init = create_model("mfa", num_classes=4, pretrained=False, tiny=True).state_dict()
    trunk = [k for k in init if k.startswith("trunk.")]
    assert trunk and all(torch.equal(init[k], trained[k]) for k in trunk)  # incl. BN running stats
    rest = [k for k in init if not k.startswith("trunk.") and init[k].is_floating_point()]
    assert any(not torch.equal(init[k], trained[k]) for k in rest)
