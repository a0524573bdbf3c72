"""Fuzz: a few hundred generated malformed det.txt files and bad flag values, each run through the
CLI's ``main`` in-process. Every one must give exactly one stderr line, ``reidpipe: error: ...`` (no
traceback, no library chatter) and an exit code of the README's table; a bad det.txt is exit 5 naming
``file:line``, a bad flag is exit 2 naming the flag."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from scene_args import hist_run_args
from test_run_bad_input import render_walker

from reidpipe.cli import main

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_exit_codes() -> set[int]:
    table = README.read_text().split("### Errors and exit codes", 1)[1].split("\n## ", 1)[0]
    return {int(c) for row in re.findall(r"^\| ([\d, ]+) \|", table, re.M) for c in row.split(",")}


@pytest.fixture(scope="module")
def walker(tmp_path_factory):
    return render_walker(tmp_path_factory.mktemp("fuzz"), "lobby", n=12)


def one_error_line(capsys, case) -> str:
    err = capsys.readouterr().err
    lines = [s for s in err.splitlines() if s.strip()]
    assert len(lines) == 1 and lines[0].startswith("reidpipe: error: "), (case, err)
    return lines[0]


BAD_TOKENS = ["nan", "inf", "-inf", "1e999", "x", "0x10", "--", "½", "1.2.3", "NaN", "None", "\x00"]


def malformed(rng: random.Random, lines: list[str]) -> tuple[str, int]:
    """A copy of the det.txt text with one line broken in a way that no reader may accept, and that
    line's number."""
    lines = list(lines)
    i = rng.randrange(len(lines))
    fields = lines[i].split(",")
    kind = rng.randrange(6)
    if kind == 0:  # a field that is not a finite number
        fields[rng.randrange(7)] = rng.choice(BAD_TOKENS)
    elif kind == 1:  # too few fields
        fields = fields[: rng.randrange(1, 6)]
    elif kind == 2:  # a frame that is not a whole number >= 1
        fields[0] = rng.choice(["0", "-1", "1.5", "1e300", "2.0000001", "-0.5"])
    elif kind == 3:  # an empty or negative box
        fields[rng.choice([4, 5])] = rng.choice(["0", "-5", "-0.0", "-1e-9"])
    elif kind == 4:  # a line of junk
        fields = ["".join(rng.choice("abc;:!?@\x7f\ufffd") for _ in range(rng.randrange(1, 12)))]
    else:  # a mangled separator run with a letter in it
        fields = [f + rng.choice(["a", "e", "_"]) if j == rng.randrange(7) else f for j, f in enumerate(fields)]
        if fields == lines[i].split(","):
            fields[2] = "e"
    lines[i] = ",".join(fields)
    return "\n".join(lines) + "\n", i + 1


def test_generated_malformed_det_files_are_each_one_line_exit_5(tmp_path, capsys, walker):
    video, det = walker
    good = det.read_text().splitlines()
    rng = random.Random(9)
    codes = documented_exit_codes()
    for n in range(300):
        text, lineno = malformed(rng, good)
        path = tmp_path / f"det{n}.txt"
        path.write_text(text)
        code = main(hist_run_args([video], [path], tmp_path / "o"))
        line = one_error_line(capsys, text)
        assert code in codes and code == 5, (text, line)
        assert f"det{n}.txt:{lineno}" in line, (text, line)


INT_FLAGS = ["--stride", "--max-frames", "--track-lost-frames", "--embed-batch", "--sample-every", "--bank-size"]
FLOAT_FLAGS = ["--conf", "--link-threshold", "--link-window", "--max-speed"]
FLAG_CASES = (
    [(f, v) for f in INT_FLAGS for v in ["0", "-1", "-100", "x", "1.5", "nan", ""]]
    + [(f, v) for f in FLOAT_FLAGS for v in ["nan", "inf", "-inf", "-1", "1e400", "x", ""]]
    + [("--conf", "7"), ("--link-threshold", "1.01"), ("--link-window", "0")]
    + [("--offsets", v) for v in ["nan", "inf", "-inf", "x", "1e999"]]
    + [("--transit", v) for v in ["a:b:nan:5", "a:b:1:inf", "a:b:5:1", "a:b:-1:2", "a:b", "a:b:c:d", ":::", "a::1:2"]]
    + [("--adjacent", v) for v in ["a", "a:b:c", ":", "a:", "a:a"]]
    + [("--names", v) for v in ["../up", "a/b", "", ".hidden", "a b", "x" * 65, "c:d", "é"]]
    + [("--device", v) for v in ["tpu", "cuda:x", "gpu", "", "CUDA"]]
    + [("--reid-input-size", v) for v in ["0 0", "-1 5", "5", "a b", "256 0"]]
    + [("--reid-std", v) for v in ["0 0 0", "1 1", "nan 1 1", "1 -1 1"]]
    + [("--reid-mean", v) for v in ["nan 0 0", "inf 0 0", "0 0"]]
    + [
        (f, v)
        for f in ["--tracker", "--reid", "--detector-kind", "--reid-color", "--openvino-precision"]
        for v in ["foo", ""]
    ]
    + [("--output", ""), ("--sources", "")]
    + [("--names", "a\nb"), ("--transit", "lobby:lobby:0:5"), ("--imgsz", "320000"), ("--offsets", "1e300")]
    + [("--detect-every", v) for v in ["0", "-2", "101", "x", "1.5", "", "AUTO"]]
    + [("--backend", v) for v in ["tensorrt", ""]]
)


def test_bad_flag_values_are_each_one_line_exit_2(tmp_path, capsys, walker):
    video, det = walker
    codes = documented_exit_codes()
    assert len(FLAG_CASES) > 100
    for flag, value in FLAG_CASES:
        values = value.split(" ") if " " in value and flag not in ("--names",) else [value]
        args = {"--sources": [str(video)], "--output": [str(tmp_path / "o")], "--detections": [str(det)]}
        args[flag] = values
        argv = ["run", "--no-progress", "--reid", "hist"] if flag != "--reid" else ["run", "--no-progress"]
        for k, v in args.items():
            argv += [k, *v]
        code = main(argv)
        line = one_error_line(capsys, (flag, value))
        assert code in codes and code in (2, 3), (flag, value, line)
        assert flag in line or code == 3, (flag, value, line)


# ------------------------------------------------------------------ other commands, other inputs
TRAIN = ["train", "--variant", "mfa", "--dataset", "market1501", "--print-config"]
BAD_TRAIN_SETS = [
    ("stages.*.epochs=two", "stages.main.epochs"),
    ("stages.*.epochs=-1", "stages.main.epochs"),
    ("stages.*.epochs=1e9", "stages.main.epochs"),
    ("stages.*.p=0", "stages.main.p"),
    ("stages.*.p=100000", "stages.main.p"),
    ("stages.*.optimizer.lr=.nan", "stages.main.optimizer.lr"),
    ("stages.*.optimizer.lr=abc", "stages.main.optimizer.lr"),
    ("stages.*.optimizer.betas=[0.9, 1.5]", "stages.main.optimizer.betas"),
    ("stages.*.schedule.milestones=[40, x]", "stages.main.schedule.milestones"),
    ("data.workers=-2", "data.workers"),
    ("data.input_size=[100000, 100000]", "data.input_size"),
    ("data.test_batch_size=1000000", "data.test_batch_size"),
    ("seed=abc", "seed"),
    ("seed=-1", "seed"),
    ("amp=maybe", "amp"),
    ("threads=0", "threads"),
    ("threads=many", "threads"),
    ("channels_last=maybe", "channels_last"),
    ("export.onnx=2", "export.onnx"),
]


@pytest.mark.parametrize("item,key", BAD_TRAIN_SETS)
def test_bad_training_values_are_one_line_exit_10_naming_the_key(tmp_path, capsys, item, key):
    code = main([*TRAIN, "--data-root", str(tmp_path), "--set", item])
    line = one_error_line(capsys, item)
    assert code == 10 and f"config value {key}:" in line, line


def _empty_events_run(folder: Path) -> Path:
    folder.mkdir()
    (folder / "events.jsonl").write_text("")
    return folder


def _run_without_track(folder: Path) -> Path:
    folder.mkdir()
    lines = [
        '{"event":"source_start","time":1.0,"camera":"c1","uri":"c1.mp4","fps":10,"width":9,"height":9,"frames":9}',
        '{"event":"track_close","time":2.0,"camera":"c1","frames":9,"start_t":0.0,"end_t":0.9}',
    ]
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _one_row_mot(path: Path, frame: str) -> Path:
    path.write_text(f"1,1,10,10,20,40,1,1,1\n{frame},1,10,10,20,40,1,1,1\n")
    return path


def _a_run(argv: list[str], out: Path) -> Path:
    assert main(argv) == 0
    return out / "trajectories.json"


def other_cases(tmp: Path, video: Path, det: Path) -> list[tuple[list[str], int, str]]:
    """(argv, exit code, words the line must hold) of bad inputs to every command."""
    (tmp / "emptydir").mkdir()
    twice = tmp / "twice.yaml"
    twice.write_text("stride: 2\nstride: 3\n")
    run = ["run", "--no-progress", "--sources", str(video), "--reid", "hist", "--output", str(tmp / "o")]
    public = [*run, "--detections", str(det)]
    return [
        ([*TRAIN, "--data-root", str(tmp), "--config", "/dev/zero"], 10, "/dev/zero is not a regular file"),
        ([*public, "--config", "/dev/zero"], 10, "/dev/zero is not a regular file"),
        ([*public, "--config", str(twice)], 10, "line 2: key 'stride' is given twice"),
        ([*run, "--detector", str(tmp / "emptydir") + "/"], 8, "holds no model ultralytics can run"),
        ([*run, "--detections", str(tmp / "emptydir")], 3, "is a folder"),
        ([*run, "--detections", str(_one_row_mot(tmp / "far.txt", "99999999999"))], 5, "far.txt:2: frame 99999999999"),
        ([*public, "--gallery", str(tmp / "g"), "--start-time", "9999-12-31T23:59:59"], 2, "--start-time"),
        ([*public, "--gallery", str(tmp / "g"), "--retention", "1e300"], 2, "--retention"),
        (["eval", "--weights", "m.onnx", "--dataset", "market1501", "--data-root", ".", "--batch", "0"], 2, "--batch"),
        (
            ["eval", "--weights", "m.onnx", "--dataset", "market1501", "--data-root", ".", "--input-size", "0", "0"],
            2,
            "argument --input-size",
        ),
        (["export", "--weights", "ck.pt", "-o", "m.onnx", "--batch-size", "100000"], 2, "--batch-size"),
        (["search", "--gallery", str(tmp / "g"), "--identity", "99999999999999999999999"], 2, "--identity"),
        (["search", "--gallery", str(tmp / "g"), "--identity", "1", "--top", "100000000000"], 2, "--top"),
        (["gallery", "forget", "--gallery", str(tmp / "g"), "--identity", "99999999999999999999999"], 2, "--identity"),
        (["gallery", "prune", "--gallery", str(tmp / "g"), "--older-than", "99999999999999w"], 2, "--older-than"),
        (["quantize", "--model", "m.onnx", "--calib", str(video), "-o", "x.onnx", "--frames", "100000"], 2, "--frames"),
        (["quantize", "--model", "m.onnx", "--calib", str(video), "-o", str(tmp) + "/"], 6, "is a folder"),
        (["bench", "--embed-only", "--reid-weights", "m.onnx", "--batch-sizes", "1,100000"], 2, "--batch-sizes"),
        (["bench", "--gallery-only", "--gallery-sizes", "2000000", "--gallery-dim", "4096"], 2, "GiB of embeddings"),
        (["bench", "--sources", str(video), "--cameras", "100000"], 2, "--cameras"),
        (["bench", "--sources", str(video), "--repeat", "0"], 2, "--repeat"),
        (["bench", "--sources", str(video), "--cameras", "2", "--camera-fps", "nan"], 2, "--camera-fps"),
        (["demo", "--seed", "-5", "--output", str(tmp / "demo")], 2, "--seed"),
        (["report", str(_empty_events_run(tmp / "empty_run"))], 4, "started no camera"),
        (
            ["report", str(_run_without_track(tmp / "no_track"))],
            5,
            "events.jsonl:2: a 'track_close' event needs 'track'",
        ),
        (
            ["score", "--pred", str(_a_run(public, tmp / "o")), "--gt", str(_one_row_mot(tmp / "gt.txt", "99999999"))],
            5,
            "gt.txt:2: frame",
        ),
    ]


def test_bad_inputs_to_every_command_are_each_one_line(tmp_path, capsys, walker):
    video, det = walker
    codes = documented_exit_codes()
    cases = other_cases(tmp_path, video, det)
    capsys.readouterr()  # the good run that score reads
    for argv, code, words in cases:
        got = main(argv)
        line = one_error_line(capsys, argv)
        assert got in codes and got == code and words in line, (argv, got, line)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished run of the two-camera sample scene (colour/texture descriptor) and a small ONNX
    embedder to adapt."""
    from scene_args import scene_run_args
    from test_adapt import tiny_onnx

    from reidpipe.samples.scene import make_scene

    root = tmp_path_factory.mktemp("adapt-fuzz")
    run = root / "run"
    assert main(scene_run_args(make_scene(root / "scene"), run)) == 0
    return run, tiny_onnx(root / "tiny.onnx")


def _run_copy(run: Path, folder: Path, change) -> Path:
    """A copy of ``run``'s trajectories.json, changed by ``change(data)`` (or replaced by text)."""
    import json

    folder.mkdir()
    data = json.loads((run / "trajectories.json").read_text())
    new = change(data)
    text = new if isinstance(new, str) else json.dumps(data)
    (folder / "trajectories.json").write_text(text)
    return folder


def adapt_cases(tmp: Path, run: Path, onnx: Path, walker_video: Path) -> list[tuple[list[str], int, str]]:
    def width(d):
        d["sources"][0]["width"] = 10**9

    def moved(d):
        d["sources"][1]["uri"] = str(tmp / "gone" / "cam2.mp4")

    def margin(d):
        d["identities"][0]["tracks"][0]["link"]["margin"] = 1e300

    def negatives(d):
        d["linker"]["in_camera"]["cam1"]["scale"] = float("1e300")

    garbage = tmp / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    (tmp / "empty").mkdir()
    out = ["--output", str(tmp / "adapted")]
    init = ["--init", str(onnx)]
    small = ["--set", "stages.*.p=2"]
    labelled = ["--source-dataset", "market1501", "--source-root", str(tmp)]
    text = (run / "trajectories.json").read_text()
    return [
        (["adapt", str(tmp / "nothing"), *out], 3, "run folder not found"),
        (["adapt", str(tmp / "empty"), *out], 3, "has no trajectories.json"),
        (["adapt", str(_run_copy(run, tmp / "cut", lambda d: text[: len(text) // 2])), *out], 5, "invalid JSON"),
        (["adapt", str(_run_copy(run, tmp / "wide", width)), *out, *init], 5, "sources[0].width"),
        (["adapt", str(_run_copy(run, tmp / "margin", margin)), *out, *init], 5, "link.margin"),
        (["adapt", str(_run_copy(run, tmp / "neg", negatives)), *out, *init], 5, "linker.in_camera.cam1.scale"),
        (["adapt", str(_run_copy(run, tmp / "moved", moved)), *out, *init], 3, "--source cam2=PATH"),
        (["adapt", str(run), *out], 2, "give --init MODEL"),
        (["adapt", str(run), *out, *init], 9, "fewer than the P=16"),
        (["adapt", str(run), *out, *init, "--holdout", "0.9"], 2, "--holdout"),
        (["adapt", str(run), *out, *init, "--crops-per-track", "0"], 2, "--crops-per-track"),
        (["adapt", str(run), *out, *init, "--source", "cam9=x.mp4"], 2, "no run has a camera 'cam9'"),
        (["adapt", str(run), *out, *init, "--resume"], 2, "no adaptation to continue"),
        (["adapt", str(run), *out, *init, "--source-dataset", "market1501"], 2, "--source-root go together"),
        (["adapt", str(run), *out, *init, "--source-ids", "5"], 2, "--source-ids needs --source-dataset"),
        (["adapt", str(run), *out, *init, *labelled, "--source-ids", "0"], 2, "--source-ids 0 is outside"),
        (
            ["adapt", str(run), *out, *init, "--source-dataset", "market1501", "--source-root", str(tmp / "nothing")],
            9,
            "data root",
        ),
        (["adapt", str(run), *out, *init, "--source-dataset", "mars", "--source-root", str(tmp)], 9, "unknown dataset"),
        (["adapt", str(run), *out, *init, *small, "--source", f"cam1={walker_video}"], 3, "not the run's recording"),
        (["adapt", str(run), *out, *init, *small, "--source", f"cam1={garbage}"], 3, "not the run's recording"),
    ]


def test_bad_adapt_inputs_are_each_one_line(tmp_path, capsys, finished_run, walker):
    run, onnx = finished_run
    codes = documented_exit_codes()
    capsys.readouterr()
    for argv, code, words in adapt_cases(tmp_path, run, onnx, walker[0]):
        got = main(argv)
        line = one_error_line(capsys, argv)
        assert got in codes and got == code and words in line, (argv, got, line)
        assert not (tmp_path / "adapted" / "dataset").exists()  # nothing half-written
