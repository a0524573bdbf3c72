"""The detector's runtime chosen on the machine at hand (pipeline/models/runtime_choice.py): the fastest
candidate that keeps the reference's detections, cached per machine and model, never trusted blindly
(a foreign, damaged or oversized cache is ignored; a cached choice is checked again before use), and
said in the run's log."""

from __future__ import annotations

import json
import math

import pytest
from shared_data import DATA  # (tests/ is on sys.path)

from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.models import runtime_choice as rc

YOLOX = DATA / "models" / "yolox_nano.onnx"
CLIP = DATA / "mtmc" / "twin_2cam" / "cam1.mp4"


def row(backend, precision, ms, recall=1.0, precision_vs=1.0) -> rc.Measured:
    return rc.Measured(backend, precision, ms, recall, precision_vs)


def test_the_fastest_candidate_that_keeps_the_detections_wins():
    rows = [row("onnxruntime", "f32", 20.0), row("openvino", "bf16", 12.0), row("onnxruntime", "int8", 8.0, 0.97)]
    assert rc.pick(rows)[:2] == ("openvino", "bf16")  # int8 is faster but misses 3 % of the people
    rows[1] = row("openvino", "bf16", 19.5)  # 2.5 % faster: not worth its differences
    assert rc.pick(rows)[:2] == ("onnxruntime", "f32")
    rows[1] = row("openvino", "bf16", 12.0, 1.0, 0.985)  # a few boxes the reference does not have
    assert rc.pick(rows)[:2] == ("onnxruntime", "f32")


def test_a_foreign_damaged_or_oversized_cache_is_ignored(tmp_path):
    path = tmp_path / "choices.json"
    good = {"backend": "openvino", "precision": "bf16", "source": "measured", "reason": "", "time": 1.0}
    good["candidates"] = [{"backend": "openvino", "precision": "bf16", "ms_per_frame": 1.0, "recall": 1.0,
                           "precision_vs_reference": 1.0}]  # fmt: skip
    bad = [
        {**good, "backend": "os.system"},  # not a candidate reidpipe knows
        {**good, "time": math.inf},
        {**good, "candidates": [{**good["candidates"][0], "ms_per_frame": "fast"}]},
        "openvino",
    ]
    choices = {"k0": good, **{f"k{i + 1}": b for i, b in enumerate(bad)}}
    path.write_text(json.dumps({"choices": choices}).replace("Infinity", "1e999"))
    assert list(rc.read_cache(path)) == ["k0"]
    path.write_text("{not json")
    assert rc.read_cache(path) == {}
    path.write_text(json.dumps({"choices": {"k0": good}}) + " " * rc.MAX_BYTES)
    assert rc.read_cache(path) == {}


def test_the_cache_keeps_the_newest_entries_only(tmp_path, monkeypatch):
    monkeypatch.setattr(rc, "MAX_ENTRIES", 3)
    path = tmp_path / "choices.json"
    for i in range(5):
        rc.write_cache(path, f"k{i}", rc.Choice("onnxruntime", "f32", "measured", [row("onnxruntime", "f32", 9.0)]))
    assert sorted(rc.read_cache(path)) == ["k2", "k3", "k4"]


@pytest.mark.real_data
@pytest.mark.skipif(not (YOLOX.exists() and CLIP.exists()), reason="../shared/data (YOLOX, twin_2cam) is absent")
def test_a_choice_is_measured_once_then_read_back_and_checked(tmp_path, monkeypatch):
    pytest.importorskip("openvino", reason="openvino (optional extra reidpipe[openvino]) is not installed")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(rc, "FRAMES", 4)
    monkeypatch.setattr(rc, "ROUNDS", 1)
    cfg = PipelineConfig(detector=str(YOLOX))
    candidates = (rc.REFERENCE, ("openvino", "f32"))
    first = rc.choose(cfg, [str(CLIP)], candidates)
    assert first.source == "measured" and {(m.backend, m.precision) for m in first.measured} == set(candidates)
    ov = next(m for m in first.measured if m.backend == "openvino")
    assert ov.recall >= 0.99 and ov.precision_vs_reference >= 0.99  # OpenVINO f32 gives the same boxes
    assert (first.backend, first.precision) in candidates and "detector runs on" in first.summary()
    again = rc.choose(cfg, [str(CLIP)], candidates)
    assert again.source == "cache" and (again.backend, again.precision) == (first.backend, first.precision)
    # another model (its bytes) is another key; live sources only: the cache or the reference
    assert rc.choose(cfg, ["rtsp://camera/1"], candidates).source == "cache"
    other = tmp_path / "other.onnx"
    other.write_bytes(YOLOX.read_bytes() + b"\0")
    assert rc.choose(cfg.replace(detector=str(other)), ["rtsp://camera/1"], candidates).source == "default"
