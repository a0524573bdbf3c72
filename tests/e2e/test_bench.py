"""``reidpipe bench``: the JSON a user gets has every field, and the figures are consistent.

Speed itself is not asserted (the machine is shared); what is checked is what a user reading
bench.json would check: every stage timed, frames/s positive and consistent with frame counts, the
pipeline/detector-only ratio in (0, 1.2], both passes saw the same frames and detections, embedded
crops a subset of detections, the embedding benchmark's runtimes agree on the embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from shared_data import DATA  # noqa: E402  (tests/ is on sys.path)

from reidpipe.cli import main as cli

STAGES = ("decode", "detect", "track", "crop", "embed", "link", "export")


def _render(path: Path, det_path: Path, frames: int, seed: int, size=(320, 240)) -> int:
    """A small video of two coloured 'people' walking across a textured background, with its
    MOTChallenge det.txt; returns the number of detection rows."""
    import cv2

    w, h = size
    rng = np.random.default_rng(seed)
    bg = rng.integers(60, 120, (h, w, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    assert writer.isOpened()
    people = [((200, 40, 40), (40, 40, 200), 10, 1), ((40, 200, 40), (200, 200, 40), 280, -1)]
    rows = []
    for f in range(frames):
        img = bg.copy()
        for pid, (top, bottom, x0, dx) in enumerate(people, 1):
            x = x0 + dx * 3 * f
            y = 60 + 10 * pid
            if x < 0 or x + 30 > w:
                continue
            img[y : y + 45, x : x + 30] = top
            img[y + 45 : y + 90, x : x + 30] = bottom
            rows.append(f"{f + 1},-1,{x},{y},30,90,0.95,-1,-1,-1")
        writer.write(img)
    writer.release()
    det_path.write_text("\n".join(rows) + "\n")
    return len(rows)


def test_bench_pipeline_json_fields_and_sanity(tmp_path, capsys):
    vids, dets, n_rows = [], [], 0
    for i in range(2):
        v, d = tmp_path / f"cam{i}.mp4", tmp_path / f"cam{i}_det.txt"
        n_rows += _render(v, d, frames=50, seed=i)
        vids.append(str(v))
        dets.append(str(d))
    out = tmp_path / "bench.json"
    run_dir = tmp_path / "run"
    rc = cli(
        [
            "bench",
            "--sources",
            *vids,
            "--detections",
            *dets,
            "--reid",
            "hist",
            "--no-progress",
            "--sample-every",
            "2",
            "--repeat",
            "2",
            "--all",
            "--link-sizes",
            "200,1000",
            "--run-output",
            str(run_dir),
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    assert "pipeline / detector-only" in printed and "linking" in printed

    r = json.loads(out.read_text())
    assert r["schema"] == "reidpipe.bench/1"
    env = r["environment"]
    assert env["cpu_model"] and env["cpu_affinity"] >= 1 and env["cpu_count_logical"] >= 1
    assert env["torch_version"] and env["onnxruntime_version"] and env["device"] in ("cpu", "cuda")

    p, d = r["pipeline"], r["detector_only"]
    for k in STAGES:
        assert p["seconds"][k] >= 0.0, k
    for k in ("decode", "detect", "track", "crop", "embed", "export"):
        assert p["seconds"][k] > 0.0, k
    assert p["seconds"]["wall"] > 0 and d["seconds"]["wall"] > 0 and d["seconds"]["detect"] > 0
    assert p["seconds"]["wall"] <= p["seconds"]["total"]

    # every frame of both cameras, in both passes
    assert p["frames"] == {"cam0": 50, "cam1": 50} == d["frames"]
    assert p["frames_total"] == d["frames_total"] == 100
    for sec in (p, d):
        assert sec["fps"]["total"] == pytest.approx(sec["frames_total"] / sec["seconds"]["wall"], rel=1e-2)
        assert sec["fps"]["cam0"] > 0 and sec["fps"]["cam1"] > 0
    assert r["pipeline_fps"] == p["fps"]["total"] and r["detector_only_fps"] == d["fps"]["total"]
    assert 0.0 < r["ratio"] <= 1.2
    assert r["ratio"] == pytest.approx(r["pipeline_fps"] / r["detector_only_fps"], rel=1e-3)
    assert len(r["repeats"]) == 2 and all(0 < x["ratio"] for x in r["repeats"])
    assert p["cpu_seconds"] > 0 and d["cpu_seconds"] > 0 and r["cpu_ratio"] > 0
    assert 0 < r["detect_share_of_pipeline_wall"] <= 1.0
    assert r["pipeline_fps"] == max(x["pipeline_fps"] for x in r["repeats"])

    # counts: same detections in both passes; embedded crops are some of them
    assert p["detections"] == d["detections"] == n_rows
    assert 0 < p["crops_embedded"] < p["detections"]
    assert p["embedded_share"] == pytest.approx(p["crops_embedded"] / p["detections"], abs=1e-4)
    assert p["crops_per_s_embedding"] > 0 and p["crops_per_s_wall"] > 0
    assert p["tracklets"] >= 2 and 1 <= p["identities"] <= p["tracklets"]
    assert p["memory"]["peak_rss_mb"] > 0 and d["memory"]["peak_rss_mb"] > 0
    assert r["sources"][0]["camera"] == "cam0" and r["sources"][0]["frames"] == 50
    assert r["config"]["reid"] == "hist" and r["config"]["detections"] == dets

    # the pipeline's own outputs were kept where asked
    assert (run_dir / "run0" / "trajectories.json").is_file()

    link = r["linking"]
    assert [x["tracklets"] for x in link["results"]] == [200, 1000]
    assert all(x["seconds"] > 0 for x in link["results"]) and link["seconds_100k"] is None


def test_bench_cameras_reports_realtime_cameras_and_memory_per_camera(tmp_path, capsys):
    """``--cameras 3`` on one video: three cameras, every current bench field, plus realtime_cameras
    (consistent with the measured throughput) and the memory an added camera costs."""
    v, d = tmp_path / "cam.mp4", tmp_path / "cam_det.txt"
    _render(v, d, frames=30, seed=0)
    out = tmp_path / "bench.json"
    args = ["bench", "--sources", str(v), "--detections", str(d), "--reid", "hist", "--no-progress"]
    rc = cli([*args, "--cameras", "3", "--camera-fps", "5", "--output", str(out)])
    assert rc == 0
    assert "realtime_cameras" in capsys.readouterr().out
    r = json.loads(out.read_text())
    for key in ("pipeline", "detector_only", "pipeline_fps", "detector_only_fps", "ratio", "cpu_ratio", "repeats"):
        assert key in r, key
    assert r["pipeline"]["frames"] == {"cam1": 30, "cam2": 30, "cam3": 30}
    c = r["cameras"]
    assert c["cameras"] == 3 and c["camera_fps"] == 5.0
    assert r["realtime_cameras"] == c["realtime_cameras"] == int(r["pipeline_fps"] // 5.0)
    assert c["pipeline_fps_per_camera"] == pytest.approx(r["pipeline_fps"] / 3, rel=1e-3)
    assert c["realtime_at_these_cameras"] == (c["pipeline_fps_per_camera"] >= 5.0)
    cpu_s = r["pipeline"]["cpu_seconds"] / r["pipeline"]["frames_total"]
    assert c["cpu_ms_per_frame"] == pytest.approx(1000 * cpu_s, abs=1e-3) and c["usable_cores"] >= 1
    assert c["realtime_cameras_by_cpu"] == int(c["usable_cores"] / (cpu_s * 5.0))
    assert set(c["peak_rss_mb"]) == {"1", "3"} and all(m > 0 for m in c["peak_rss_mb"].values())
    assert c["memory_per_added_camera_mb"] == pytest.approx(
        (c["peak_rss_mb"]["3"] - c["peak_rss_mb"]["1"]) / 2, abs=0.1
    )
    settings = c["settings"]
    assert settings["detect_every"] == "auto" and settings["backend"] == "auto" and settings["detect_batch"] is True
    assert settings["detector"] == "public detections" and c["one_camera_fps"] > 0


def test_bench_cameras_with_a_mismatched_source_count_is_a_usage_error(tmp_path, capsys):
    v = tmp_path / "a.mp4"
    _render(v, tmp_path / "a_det.txt", frames=3, seed=0)
    rc = cli(["bench", "--sources", str(v), str(v), "--reid", "hist", "--cameras", "3"])
    err = capsys.readouterr().err
    assert rc == 2 and "--cameras 3 with 2 --sources" in err, err


def test_bench_bad_flags_name_the_flag(tmp_path, capsys):
    assert cli(["bench", "--embed-only"]) == 2
    assert "--reid-weights" in capsys.readouterr().err
    assert cli(["bench", "--output", str(tmp_path / "b.json")]) == 2
    assert "--sources" in capsys.readouterr().err
    assert cli(["bench", "--embed-only", "--reid-weights", str(tmp_path / "missing.onnx")]) == 3
    assert "missing.onnx" in capsys.readouterr().err


@pytest.mark.real_data
def test_bench_embed_only_real_osnet(tmp_path, capsys):
    model = DATA / "models" / "osnet_x0_25_msmt17.onnx"
    if not model.is_file():
        pytest.skip(f"real models not found under {DATA}")
    pytest.importorskip("onnx2torch", reason="eager-torch side of an ONNX model needs onnx2torch")
    out = tmp_path / "embed.json"
    rc = cli(
        [
            "bench",
            "--embed-only",
            "--reid-weights",
            str(model),
            "--batch-sizes",
            "1,4",
            "--min-time",
            "0.05",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    e = json.loads(out.read_text())["embedding"]
    assert e["kind"] == "onnx" and e["input_size"] == [256, 128] and e["embed_dim"] == 512
    # the file's batch is fixed at 1: a dynamic copy was made, checked equal to the original
    assert e["ort_mode"] == "batched" and e["dynamic_copy"]["max_abs_diff_vs_original"] <= 1e-4
    assert e["agreement"]["min_cosine"] > 0.999
    assert [x["batch"] for x in e["results"]] == [1, 4]
    for x in e["results"]:
        assert x["torch_crops_per_s"] > 0 and x["ort_crops_per_s"] > 0
        assert x["speedup_ort_over_torch"] == pytest.approx(x["torch_ms_per_batch"] / x["ort_ms_per_batch"], rel=1e-2)
    assert e["speedup_at_32"] is None
    assert "ORT / torch" in capsys.readouterr().out


def test_bench_embed_only_tiny_checkpoint_vs_its_onnx_export(tmp_path, capsys):
    from reidpipe.reid.checkpoint import save_checkpoint
    from reidpipe.reid.registry import create_model

    model = create_model("mfa", num_classes=5, pretrained=False, tiny=True)
    weights = tmp_path / "tiny_mfa.pt"
    save_checkpoint(weights, model)
    out = tmp_path / "embed.json"
    rc = cli(
        [
            "bench",
            "--embed-only",
            "--reid-weights",
            str(weights),
            "--batch-sizes",
            "4,1",
            "--min-time",
            "0.02",
            "--threads",
            "1",
            "--device",
            "cpu",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["environment"]["device"] == "cpu" and "pipeline" not in r and "linking" not in r
    e = r["embedding"]
    assert e["kind"] == "checkpoint" and e["threads"] == 1 and e["ort_mode"] == "batched"
    assert e["input_size"] == list(model.input_size) and e["embed_dim"] == model.embed_dim
    # the exported ONNX computes the same embeddings as the checkpoint's eager embed
    assert e["agreement"]["min_cosine"] > 0.9999 and e["agreement"]["max_abs_diff"] < 1e-3
    assert [x["batch"] for x in e["results"]] == [1, 4]
    assert all(x["torch_crops_per_s"] > 0 and x["ort_crops_per_s"] > 0 and min(x["reps"]) >= 3 for x in e["results"])
    assert not list(tmp_path.glob("**/*.onnx"))  # the export went to a temporary folder, now gone
    assert "mfa" in capsys.readouterr().out


def test_bench_embedding_falls_back_to_crop_by_crop_when_the_batch_cannot_be_freed(monkeypatch):
    model = DATA / "models" / "osnet_x0_25_msmt17.onnx"
    if not model.is_file():
        pytest.skip(f"real models not found under {DATA}")
    pytest.importorskip("onnx2torch", reason="eager-torch side of an ONNX model needs onnx2torch")
    from reidpipe.errors import CheckpointError
    from reidpipe.pipeline.bench import embed as bench_embed

    def refuse(src, **kw):
        raise CheckpointError(f"{src}: the dynamic-batch copy disagrees with the original")

    monkeypatch.setattr(bench_embed, "dynamic_batch_copy", refuse)
    e = bench_embed.bench_embedding(model, batch_sizes=[3], device="cpu", min_time=0.01, threads=1)
    assert e["ort_mode"] == "per-crop" and "crop by crop" in e["torch_impl"]
    assert any("crop by crop" in n for n in e["notes"])
    assert e["agreement"]["min_cosine"] > 0.999 and e["results"][0]["ort_crops_per_s"] > 0


def test_make_dynamic_batch_frees_a_batch_one_export(tmp_path):
    """A model exported with its batch fixed at 1 (flatten hard-coded as reshape(1, -1), like
    torchreid's OSNet export) gets a dynamic-batch copy that embeds a batch like crop-by-crop runs."""
    import onnx
    import onnxruntime as ort

    pytest.importorskip("torch")
    from batch_one_model import export_batch_one_model

    from reidpipe.errors import CheckpointError
    from reidpipe.pipeline.models.onnx_batch import make_dynamic_batch, onnx_batch_dim

    src, dst = export_batch_one_model(tmp_path / "fixed.onnx"), tmp_path / "dyn" / "dynamic.onnx"
    assert onnx_batch_dim(src) == 1
    with pytest.raises(Exception, match="dimensions"):  # the original refuses a batch of 3
        ort.InferenceSession(str(src)).run(None, {"images": np.zeros((3, 3, 16, 8), np.float32)})
    report = make_dynamic_batch(src, dst)
    assert report["max_abs_diff_vs_original"] <= 1e-5 and report["reshapes_rewritten"] >= 1
    assert onnx_batch_dim(dst) == "batch"
    onnx.checker.check_model(onnx.load(str(dst)))
    x = np.random.default_rng(1).standard_normal((5, 3, 16, 8)).astype(np.float32)
    got = ort.InferenceSession(str(dst)).run(None, {"images": x})[0]
    ref = np.concatenate([ort.InferenceSession(str(src)).run(None, {"images": x[i : i + 1]})[0] for i in range(5)])
    assert got.shape == (5, 6) and np.abs(got - ref).max() < 1e-5
    # a model whose batch is already dynamic is refused, and the input is never overwritten
    with pytest.raises(CheckpointError, match="dynamic.onnx"):
        make_dynamic_batch(dst, tmp_path / "again.onnx")
