"""Every variant trains end to end through the CLI (tiny model, tiny Market-1501-layout dataset, CPU),
stops after one epoch, resumes from its checkpoint to the end, and `reidpipe eval` scores the result."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from train_args import tiny_train_flags  # (tests/ is on sys.path)

from reidpipe.cli import main as cli
from reidpipe.reid.datasets.synthetic import write_dataset

VARIANTS = ["clipreid", "mscsa_tgi", "can_cma", "pivl", "mfa"]

TINY = tiny_train_flags("stages.*.batch_size=8")


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_dataset(
        "market1501", root / "reid", ids=4, test_ids=3, per_cam=2, cams=2, size=(64, 32), parsing_root=root / "parsing"
    )
    return root


@pytest.mark.parametrize("variant", VARIANTS)
def test_train_resume_eval(variant, market, tmp_path, capsys):
    torch.manual_seed(0)
    run = tmp_path / "run"
    args = [
        "train",
        "--variant",
        variant,
        "--dataset",
        "market1501",
        "--data-root",
        str(market / "reid"),
        "--output",
        str(run),
        *TINY,
    ]
    if variant == "pivl":
        args += ["--parsing-root", str(market / "parsing")]
    # every stage 1 epoch (mfa: its single stage 2 epochs); stop after the first epoch
    epochs = "stages.*.epochs=2" if variant == "mfa" else "stages.*.epochs=1"
    assert cli(args + ["--set", epochs, "--set", "stop_after_epochs=1"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] is False
    ck = torch.load(run / "last.pt", weights_only=True)
    assert ck["variant"] == variant and ck["training"]["epoch"] == 1 and ck["training"]["stage_index"] == 0
    first_step = ck["training"]["global_step"]

    assert cli(args + ["--resume", "--set", "stop_after_epochs=null"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] is True
    ck = torch.load(run / "last.pt", weights_only=True)
    assert ck["training"]["stage_index"] == len(ck["training"]["config"]["stages"]) - 1
    assert ck["training"]["global_step"] > first_step
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    n_epochs = sum(int(s["epochs"]) for s in ck["training"]["config"]["stages"])
    assert len(rows) == n_epochs
    assert all(float(r["loss"]) == float(r["loss"]) for r in rows)  # finite, not NaN
    assert (run / "config.yaml").is_file() and (run / "environment.json").is_file()
    assert (run / "best.pt").is_file()  # the last stage evaluates at its last epoch

    out = tmp_path / "metrics.json"
    assert (
        cli(
            [
                "eval",
                "--weights",
                str(run / "last.pt"),
                "--dataset",
                "market1501",
                "--data-root",
                str(market / "reid"),
                "--output",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    m = json.loads(out.read_text())
    for k in ("mAP", "rank1", "rank5", "rank10"):
        assert 0.0 <= m[k] <= 1.0
    assert m["rank1"] <= m["rank5"] <= m["rank10"]
    assert m["num_query"] == 3 and m["num_gallery"] == 9
