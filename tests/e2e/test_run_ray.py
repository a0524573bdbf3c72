"""``--engine ray``: the same identities as in-process, and the faults a cluster brings.

The tests in this process share one local Ray (the ``local_ray`` fixture, 2 CPUs); the ones that
need a driver of their own (Ctrl-C, an unreachable cluster) run ``reidpipe`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from scene_args import hist_run_args
from test_run_bad_input import one_line_error, render_walker

from reidpipe.cli import main
from reidpipe.pipeline.io.export import read_trajectories

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
TWIN = DATA / "mtmc" / "twin_2cam"
OSNET = DATA / "models" / "osnet_x0_25_msmt17.onnx"


def identities(out: Path) -> list:
    """Each identity as its id and its tracks (camera, track, number of points)."""
    data = read_trajectories(out / "trajectories.json")
    return [
        (i["id"], sorted((t["camera"], t["track"], len(t["points"])) for t in i["tracks"])) for i in data["identities"]
    ]


def events(out: Path) -> list[dict]:
    return [json.loads(s) for s in (out / "events.jsonl").read_text().splitlines()]


def test_demo_gives_the_same_identities_on_both_engines(tmp_path, local_ray, monkeypatch, capsys):
    monkeypatch.setenv("REIDPIPE_CACHE", str(tmp_path / "cache"))
    runs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        assert main(["demo", "--engine", engine, "--output", str(out), "--json"]) == 0
        runs[engine] = json.loads(capsys.readouterr().out)
    assert identities(tmp_path / "ray") == identities(tmp_path / "local")
    assert runs["ray"]["links"] == runs["local"]["links"] and runs["ray"]["links"]["f1"] == pytest.approx(1.0)
    # the driver logs the same events in the same order (times aside)
    timing = {"time", "seconds"}  # wall-clock figures differ between any two runs
    strip = [[{k: v for k, v in e.items() if k not in timing} for e in events(tmp_path / x)] for x in ("local", "ray")]
    assert strip[0] == strip[1]
    # the actors' crop thumbnails reach the driver's output folder: the same files, the same pixels
    thumbs = {x: {p.name: p.read_bytes() for p in (tmp_path / x / "thumbs").glob("*.jpg")} for x in ("local", "ray")}
    assert thumbs["local"] and thumbs["ray"] == thumbs["local"]


@pytest.mark.real_data
@pytest.mark.skipif(not (TWIN.is_dir() and OSNET.is_file()), reason="../shared/data (twin_2cam, OSNet) absent")
def test_twin_with_public_detections_gives_the_same_identities_on_both_engines(tmp_path, local_ray, capsys):
    args = [
        "--sources",
        TWIN / "cam1.mp4",
        TWIN / "cam2.mp4",
        "--detections",
        TWIN / "cam1_det.txt",
        TWIN / "cam2_det.txt",
        "--reid-weights",
        OSNET,
    ]
    assert main(["run", "--no-progress", *map(str, args), "--output", str(tmp_path / "local")]) == 0
    assert (
        main(
            [
                "run",
                "--no-progress",
                *map(str, args),
                "--output",
                str(tmp_path / "ray"),
                "--engine",
                "ray",
                "--cameras-per-worker",
                "2",
            ]
        )
        == 0
    )
    local, ray = identities(tmp_path / "local"), identities(tmp_path / "ray")
    assert len(local) > 20 and any(len({c for c, _, _ in tracks}) == 2 for _, tracks in local)
    assert ray == local


def test_a_killed_worker_ends_its_camera_and_the_others_go_on(tmp_path, local_ray, capsys):
    short, det_s = render_walker(tmp_path, "short", n=300)
    long, det_l = render_walker(tmp_path, "long", n=8000)  # ~8 s of work: killed long before its end
    out = tmp_path / "o"
    killed = []

    def kill_long_worker() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            log = out / "events.jsonl"
            lines = log.read_text().splitlines()[:-1] if log.exists() else []  # the last may be half-written
            if any(e["event"] == "track_open" and e["camera"] == "long" for e in map(json.loads, lines)):
                for name in local_ray.util.list_named_actors():
                    if name.startswith("reidpipe-worker-long-"):
                        local_ray.kill(local_ray.get_actor(name))
                        killed.append(name)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_long_worker, daemon=True)
    killer.start()
    code = main(hist_run_args([short, long], [det_s, det_l], out, "--engine", "ray", "--track-lost-frames", "3000"))
    killer.join(5)
    err = capsys.readouterr().err
    assert killed and code == 12, err
    assert "warning: the Ray worker of camera long" in err and "died" in one_line_error(err)
    data = read_trajectories(out / "trajectories.json")
    by_cam = {t["camera"]: t for i in data["identities"] for t in i["tracks"]}
    assert len(by_cam["short"]["points"]) >= 290  # the other camera ran to its end
    log = events(out)
    lost = [e for e in log if e["event"] == "worker_lost"]
    assert len(lost) == 1 and lost[0]["camera"] == "long"
    assert log[-1]["event"] == "run_end"


def test_a_worker_that_cannot_open_its_source_fails_as_in_process(tmp_path, local_ray, capsys):
    video, det = render_walker(tmp_path, "lobby", n=10)
    missing = tmp_path / "nowhere" / "cam2.mp4"
    errs = {}
    for engine in ("local", "ray"):
        code = main(hist_run_args([video, missing], [det, det], tmp_path / engine, "--engine", engine))
        assert code == 3
        errs[engine] = one_line_error(capsys.readouterr().err)
    assert errs["ray"] == errs["local"] and str(missing) in errs["ray"]


def test_a_cluster_without_the_resources_asked_is_one_line(tmp_path, local_ray, capsys):
    video, det = render_walker(tmp_path, "lobby", n=10)
    t0 = time.time()
    code = main(
        [
            "run",
            "--no-progress",
            "--engine",
            "ray",
            "--worker-gpus",
            "1",
            "--sources",
            str(video),
            "--detections",
            str(det),
            "--reid",
            "hist",
            "--output",
            str(tmp_path / "o"),
        ]
    )
    assert code == 13 and time.time() - t0 < 30
    msg = one_line_error(capsys.readouterr().err)
    assert "1 CPU + 1 GPU" in msg and "2 CPU" in msg


def test_ray_flags_need_the_ray_engine(tmp_path, capsys):
    code = main(["run", "--sources", "a.mp4", "--output", str(tmp_path / "o"), "--ray-address", "auto"])
    assert code == 2 and "need --engine ray" in one_line_error(capsys.readouterr().err)


def _reidpipe(*args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "reidpipe", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        **kw,
    )


def test_an_unreachable_ray_address_is_one_line_not_a_hang(tmp_path):
    video, det = render_walker(tmp_path, "lobby", n=10)
    proc = _reidpipe(
        "run",
        "--engine",
        "ray",
        "--ray-address",
        "127.0.0.1:9",
        "--sources",
        str(video),
        "--detections",
        str(det),
        "--reid",
        "hist",
        "--output",
        str(tmp_path / "o"),
    )
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 13
    assert "127.0.0.1:9" in one_line_error(err) and "no Ray cluster answers" in err


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_on_the_driver_finalise_with_everything_seen(tmp_path, sig, code):
    video, det = render_walker(tmp_path, "long", n=8000)
    out = tmp_path / "o"
    proc = _reidpipe(
        "run",
        "--engine",
        "ray",
        "--sources",
        str(video),
        "--detections",
        str(det),
        "--reid",
        "hist",
        "--output",
        str(out),
        "--no-progress",
        "--track-lost-frames",
        "3000",
    )
    log = out / "events.jsonl"
    deadline = time.time() + 120  # starts its own local Ray
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and '"track_open"' in log.read_text():
            break
        time.sleep(0.05)
    time.sleep(1.0)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == code, err
    assert "interrupted" in one_line_error(err)
    (ident,) = read_trajectories(out / "trajectories.json")["identities"]
    assert 2 <= len(ident["tracks"][0]["points"]) < 8000
    kinds = [e["event"] for e in events(out)]
    assert kinds[0] == "source_start" and "track_close" in kinds and kinds[-1] == "run_end"
