"""`reidpipe train --init MODEL`: fine-tune an ONNX embedder, a torchreid OSNet state dict or a reidpipe
checkpoint on a dataset in the Market layout; the result is `model.onnx` for `reidpipe run` and
`metrics.json` with the init model's figures before and the fine-tuned one's after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reidpipe.cli import main as cli
from reidpipe.reid.backbones.osnet import build_osnet
from reidpipe.reid.datasets.synthetic import write_dataset

FAST = [
    "--set",
    "stages.*.p=4",
    "--set",
    "stages.*.k=2",
    "--set",
    "stages.*.epochs=2",
    "--set",
    "data.workers=0",
    "--set",
    "data.input_size=[64,32]",
    "--set",
    "log.progress=false",
    "--set",
    "log.tensorboard=false",
    "--set",
    "device=cpu",
    "--set",
    "threads=1",
]


class _BatchOneEmbedder(nn.Module):
    """An OSNet trunk whose flatten is traced with the batch fixed at 1, as torchreid's exports are."""

    def __init__(self):
        super().__init__()
        self.net = build_osnet(0.25).eval()
        with torch.no_grad():  # trained-looking weights: the exporter merges equal (all-zero) tensors
            for t in self.net.state_dict().values():
                if t.is_floating_point():
                    t.add_(torch.rand_like(t) * 0.02)

    def forward(self, x):
        v = self.net.global_avgpool(self.net.feature_map(x))
        return self.net.fc(v.view(v.size(0), -1))


def _export(module: nn.Module, path: Path, shape: tuple[int, ...]) -> Path:
    torch.onnx.export(
        module.eval(), (torch.randn(*shape),), str(path), input_names=["images"], opset_version=13, dynamo=False
    )
    return path


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return write_dataset("market1501", root, ids=8, test_ids=4, per_cam=2, cams=2, size=(64, 32)).parent


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    onnx_path = _export(_BatchOneEmbedder(), out / "tiny_reid.onnx", (1, 3, 64, 32))
    state = build_osnet(0.25).state_dict()
    state["classifier.weight"] = torch.zeros(10, 512)  # torchreid's classifier of another training set
    state["classifier.bias"] = torch.zeros(10)
    torch.save(state, out / "osnet.pth")
    return {"onnx": onnx_path, "pth": out / "osnet.pth", "dir": out}


def _train(market, out, init, *extra) -> int:
    args = ["train", "--init", str(init), "--dataset", "market1501", "--data-root", str(market)]
    return cli([*args, "--output", str(out), *FAST, *extra])


def test_onnx_init_gives_a_model_for_run_and_before_after_metrics(market, models, tmp_path):
    from reidpipe.pipeline.models.embed import OnnxEmbedder

    run = tmp_path / "ft"
    assert _train(market, run, models["onnx"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    for when in ("before", "after"):
        assert 0.0 <= metrics[when]["mAP"] <= 1.0 and len(metrics[when]["cmc"]) >= 5
    # "before" is the init model as given: the same figures as `reidpipe eval` of the ONNX file itself
    ref = tmp_path / "eval.json"
    assert cli(["eval", "--weights", str(models["onnx"]), "--dataset", "market1501", "--data-root", str(market),
                "--output", str(ref), "--no-progress"]) == 0  # fmt: skip
    direct = json.loads(ref.read_text())
    assert metrics["before"]["mAP"] == pytest.approx(direct["mAP"], abs=1e-6)
    assert metrics["before"]["cmc"][:5] == pytest.approx(direct["cmc"][:5], abs=1e-6)
    # the exported model is what the pipeline's embedder runs: pre-processing and threshold from metadata
    emb = OnnxEmbedder(str(run / "model.onnx"))
    assert emb.input_size == (64, 32) and emb.color == "RGB"
    assert emb.link_threshold == pytest.approx(metrics["link_threshold"], abs=1e-4)
    assert 0.3 <= emb.link_threshold <= 0.95
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (80, 40, 3), dtype=np.uint8) for _ in range(3)]
    f = emb.embed(crops)
    assert f.shape == (3, 512) and np.allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-4)
    # the trunk came from the graph and was trained: the exported model embeds otherwise than the given one
    given = OnnxEmbedder(str(models["onnx"])).embed(crops)
    assert given.shape == f.shape and not np.allclose(given, f, atol=1e-3)


def test_osnet_state_dict_init_loads_the_file_and_freezes_the_stem(market, models, tmp_path):
    run = tmp_path / "pth"
    assert _train(market, run, models["pth"]) == 0
    given = torch.load(models["pth"], weights_only=True)
    trained = torch.load(run / "last.pt", weights_only=True)["state_dict"]
    stem = [k for k in given if k.startswith(("conv1.", "conv2."))]
    assert stem and all(torch.equal(given[k], trained[f"trunk.{k}"]) for k in stem)  # loaded, frozen by the recipe
    later = [k for k in given if k.startswith("conv4.") and given[k].is_floating_point()]
    assert any(not torch.equal(given[k], trained[f"trunk.{k}"]) for k in later)  # trained
    assert trained["classifier.weight"].shape == (8, 512)  # sized to this dataset's 8 identities
    assert (run / "model.onnx").is_file()


def test_reidpipe_checkpoint_init_continues_as_its_variant(market, models, tmp_path):
    first = tmp_path / "first"
    assert _train(market, first, models["pth"], "--set", "stages.*.epochs=1") == 0
    second = tmp_path / "second"
    assert _train(market, second, first / "last.pt", "--set", "stages.*.epochs=1") == 0
    log = (second / "train.log").read_text()
    assert "init from" in log and "tensors loaded" in log
    start = torch.load(first / "last.pt", weights_only=True)["state_dict"]
    before = json.loads((second / "metrics.json").read_text())["before"]
    after_first = json.loads((first / "metrics.json").read_text())["after"]
    assert before["mAP"] == pytest.approx(after_first["mAP"], abs=1e-6)  # it started where the first ended
    assert "trunk.conv1.conv.weight" in start


def _one_line(capsys) -> str:
    """The one error line (the run's own log lines, such as the dataset table, may come before it)."""
    err = capsys.readouterr().err
    errors = [s for s in err.splitlines() if s.startswith("reidpipe: error: ")]
    assert len(errors) == 1 and "Traceback" not in err and err.rstrip().endswith(errors[0]), err
    return errors[0]


class _Detector(nn.Module):
    def forward(self, x):
        return x.mean(1).flatten(1)[:, :85].unsqueeze(1).repeat(1, 100, 1)  # (1, 100, 85) box rows


class _Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1000)

    def forward(self, x):
        return self.fc(x.mean((2, 3))).softmax(1)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch ran-code.marker",))


@pytest.mark.parametrize(
    "case",
    [
        "detector_onnx",
        "classifier_onnx",
        "pickle_code",
        "foreign_state_dict",
        "empty_dataset",
        "wrong_layout",
        "few_identities",
        "variant_conflict",
        "neither",
    ],  # fmt: skip
)
def test_bad_input_is_one_line_and_its_exit_code(case, market, models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    init, root, extra, code = models["onnx"], market, list(FAST), 8
    if case == "detector_onnx":
        init = _export(_Detector(), tmp_path / "det.onnx", (1, 3, 128, 128))
    elif case == "classifier_onnx":
        init = _export(_Classifier(), tmp_path / "cls.onnx", (1, 3, 224, 224))
    elif case == "pickle_code":
        init = tmp_path / "evil.pth"
        torch.save({"conv1.conv.weight": _RunsCode()}, init)
    elif case == "foreign_state_dict":
        init = tmp_path / "resnet.pth"
        torch.save({"layer1.0.conv1.weight": torch.zeros(2, 2)}, init)
    elif case == "empty_dataset":
        root, code = tmp_path / "empty", 9
        root.mkdir()
    elif case == "wrong_layout":
        root, code = tmp_path / "flat", 9
        root.mkdir()
        (root / "a.jpg").write_bytes(b"not an image")
    elif case == "few_identities":
        extra, code = [*FAST, "--set", "stages.*.p=16"], 9  # 8 identities, P = 16
    elif case == "variant_conflict":
        extra, code = ["--variant", "mfa", *FAST], 2
    args = ["train", "--dataset", "market1501", "--data-root", str(root), "--output", str(tmp_path / "o"), *extra]
    if case != "neither":
        args = ["train", "--init", str(init), *args[1:]]
    else:
        code = 2
    assert cli(args) == code, case
    line = _one_line(capsys)
    if case in ("detector_onnx", "classifier_onnx"):
        assert "not a ReID embedder" in line and str(init) in line
    if case == "pickle_code":
        assert "pickled Python objects" in line and not (tmp_path / "ran-code.marker").exists()
    if case == "few_identities":
        assert "8 training identities" in line and "P=16" in line


def test_sigterm_mid_epoch_keeps_the_last_epoch_and_resume_finishes(tmp_path, models):
    root = write_dataset("market1501", tmp_path / "d", ids=8, test_ids=4, per_cam=8, cams=2, size=(64, 32)).parent
    run = tmp_path / "run"
    base = [sys.executable, "-m", "reidpipe", "train", "--init", str(models["pth"]), "--dataset", "market1501",
            "--data-root", str(root), "--output", str(run), *FAST, "--set", "stages.*.epochs=6"]  # fmt: skip
    proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log = run / "train.log"
    deadline = time.time() + 240
    while time.time() < deadline and not (run / "last.pt").is_file():  # epoch 1 saved: now mid-epoch 2
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "Traceback" not in err
    kept = torch.load(run / "last.pt", weights_only=True)["training"]["epoch"]
    assert f"last.pt keeps epoch {kept} of stage 'main'; continue with --resume" in log.read_text()
    assert 1 <= kept < 6
    assert not (run / "model.onnx").exists()
    done = subprocess.run([*base, "--resume"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resuming from {run / 'last.pt'}: stage 'main' epoch {kept} done" in log.read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["before"] is not None and metrics["after"]["mAP"] >= 0
