"""Fuzz: a few hundred generated malformed det.txt files and bad flag values, each run through the
CLI's ``main`` in-process. Every one must give exactly one stderr line, ``reidpipe: error: ...`` (no
traceback, no library chatter) and an exit code of the README's table; a bad det.txt is exit 5 naming
``file:line``, a bad flag is exit 2 naming the flag."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
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
        code = main(
            [
                "run",
                "--no-progress",
                "--sources",
                str(video),
                "--detections",
                str(path),
                "--reid",
                "hist",
                "--output",
                str(tmp_path / "o"),
            ]
        )
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
    + [(f, v) for f in ["--tracker", "--reid", "--detector-kind", "--reid-color"] for v in ["foo", ""]]
    + [("--output", ""), ("--sources", "")]
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
