"""Every pipeline setting has a rule (pipeline/validate.py), applied the same way to flags (exit 2,
naming the flag), a --config YAML (exit 10, naming the file and key) and the Python API
(``ConfigError`` naming the key); NaN and infinity never pass."""

from __future__ import annotations

import json
import math
from dataclasses import fields

import pytest

import reidpipe
from reidpipe.cli import main
from reidpipe.errors import ConfigError
from reidpipe.pipeline.config import EngineConfig, LinkerConfig, PipelineConfig, SamplerConfig
from reidpipe.pipeline.io.export import write_trajectories
from reidpipe.pipeline.settings import OUTPUT_GROUPS, PIPELINE_GROUPS, declared, flags_of, rule_of, run_flags
from reidpipe.pipeline.types import SourceInfo
from reidpipe.pipeline.validate import problems


def run_cli(capsys, tmp_path, *flags):
    code = main(
        [
            "run",
            "--no-progress",
            "--sources",
            str(tmp_path / "absent.mp4"),
            "--output",
            str(tmp_path / "o"),
            *map(str, flags),
        ]
    )
    err = capsys.readouterr().err
    lines = [s for s in err.splitlines() if s.strip()]
    assert "Traceback" not in err and len(lines) == 1, err
    return code, lines[0]


def test_every_setting_has_exactly_one_rule():
    keys = {f.name for f in fields(PipelineConfig)}
    keys |= {f"sampler.{f.name}" for f in fields(SamplerConfig)} | {f"link.{f.name}" for f in fields(LinkerConfig)}
    keys |= {f"engine.{f.name}" for f in fields(EngineConfig)}
    rules = {key: rule_of(f) for key, f in declared(PipelineConfig)}
    assert set(rules) == keys and all(callable(r) for r in rules.values())
    assert list(problems(PipelineConfig())) == []


def _run_parser_flags() -> set[str]:
    """The long flags of `reidpipe run`'s parser, as a user sees them."""
    import argparse

    from reidpipe.commands.run import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return {s for a in parser._actions for s in a.option_strings if s.startswith("--")}


# the flags of `reidpipe run` that are not a setting: what to run on, and the file of settings
NOT_SETTINGS = {"--help", "--sources", "--config"}


def test_every_run_flag_sets_exactly_one_config_key_with_one_rule():
    owners: dict[str, list[str]] = {}
    for key, f in declared(PipelineConfig):
        for flag in flags_of(f):
            owners.setdefault(flag.name, []).append(key)
    assert {flag: keys for flag, keys in owners.items() if len(keys) != 1} == {}
    assert set(owners) == _run_parser_flags() - NOT_SETTINGS  # every flag of the parser is declared, no other
    assert run_flags(PipelineConfig, PIPELINE_GROUPS + OUTPUT_GROUPS) == {
        flag: keys[0] for flag, keys in owners.items()
    }


def test_a_switch_sets_its_value_only_when_given_by_run_and_by_bench():
    import argparse

    from reidpipe.commands import bench, run
    from reidpipe.commands.run import config_from_args

    for command in (run, bench):
        parser = argparse.ArgumentParser()
        command.add_arguments(parser)
        base = ["--sources", "x.mp4", "--output", "o.json"]
        plain = config_from_args(parser.parse_args(base))
        assert plain.progress is True and plain.link.split is True and plain.link.refine is None
        given = config_from_args(parser.parse_args([*base, "--no-progress", "--no-split", "--online"]))
        assert given.progress is False and given.link.split is False and given.link.refine is False


# one value past each flag's rule (the rule's own bound where it has one, from reidpipe/limits.py)
OUT_OF_RANGE = {
    "--names": "a/b",
    "--offsets": "1e300",
    "--stride": "0",
    "--max-frames": "0",
    "--detector": "",
    "--detections": "",
    "--conf": "1.5",
    "--imgsz": "320000",
    "--device": "tpu",
    "--detect-every": "101",
    "--track-lost-frames": "0",
    "--reid-weights": "",
    "--reid-input-size": "0 0",
    "--reid-mean": "nan 0 0",
    "--reid-std": "0 0 0",
    "--embed-batch": "100000",
    "--embed-budget": "0",
    "--sample-every": "0",
    "--bank-size": "100000",
    "--link-threshold": "1.01",
    "--transit": "a:b:5:1",
    "--adjacent": "a:a",
    "--link-window": "0",
    "--max-speed": "-1",
    "--cameras-per-worker": "0",
    "--worker-cpus": "0",
    "--worker-gpus": "-1",
    "--output": "",
    "--gallery": "",
    "--start-time": "yesterday",
    "--retention": "1e300",
}
# flags whose value is a choice or a switch (argparse refuses anything else, naming the flag), and
# --ray-address, where any text is an address for Ray to try
CHOICES_AND_SWITCHES = {
    "--pace",
    "--detector-kind",
    "--trust-weights",
    "--backend",
    "--openvino-precision",
    "--no-detect-batch",
    "--tracker",
    "--no-interpolate",
    "--reid",
    "--reid-color",
    "--no-embed-async",
    "--non-overlapping",
    "--refine",
    "--online",
    "--no-camera-centering",
    "--no-split",
    "--engine",
    "--ray-address",
    "--save-video",
    "--save-mot",
    "--no-progress",
    "--no-crops",
    "--report",
}
# what another flag must be given with for the value to be read at all
NEEDS = {
    "--cameras-per-worker": ["--engine", "ray"],
    "--worker-cpus": ["--engine", "ray"],
    "--worker-gpus": ["--engine", "ray"],
    "--start-time": ["--gallery", "g"],
    "--retention": ["--gallery", "g"],
}


def test_each_flag_is_either_bounded_here_or_a_choice():
    assert set(OUT_OF_RANGE) | CHOICES_AND_SWITCHES == _run_parser_flags() - NOT_SETTINGS
    assert not set(OUT_OF_RANGE) & CHOICES_AND_SWITCHES


@pytest.mark.parametrize("flag", sorted(OUT_OF_RANGE))
def test_each_rule_refuses_an_out_of_range_value_in_one_line_naming_its_flag(capsys, tmp_path, flag):
    value = OUT_OF_RANGE[flag]
    code, line = run_cli(capsys, tmp_path, flag, *(value.split(" ") if value else [""]), *NEEDS.get(flag, []))
    assert code == 2, line
    assert line.startswith(f"reidpipe: error: {flag} ") or line.startswith(f"reidpipe: error: argument {flag}"), line


BAD_FLAGS = [
    ("--bank-size", "0"),
    ("--bank-size", "-1"),
    ("--track-lost-frames", "-1"),
    ("--reid-input-size", "0 0"),
    ("--conf", "1.5"),
    ("--conf", "nan"),
    ("--conf", "-1"),
    ("--embed-batch", "0"),
    ("--sample-every", "0"),
    ("--link-window", "nan"),
    ("--link-window", "inf"),
    ("--link-window", "-3"),
    ("--max-speed", "-1"),
    ("--max-speed", "nan"),
    ("--offsets", "nan"),
    ("--offsets", "inf"),
    ("--transit", "a:b:nan:5"),
    ("--transit", "a:b:5:2"),
    ("--adjacent", "a"),
    ("--adjacent", "a:a"),
    ("--device", "tpu"),
    ("--reid-std", "0 0 0"),
    ("--reid-mean", "nan 0 0"),
    ("--link-threshold", "nan"),
    ("--link-threshold", "2"),
    ("--stride", "0"),
    ("--max-frames", "0"),
    ("--names", "../escaped_cam"),
    ("--names", "sub/dir"),
    ("--names", ""),
    ("--names", ".hidden"),
    # upper bounds (reidpipe/limits.py): each would make the run allocate until it is killed
    ("--imgsz", "320000"),
    ("--embed-batch", "100000"),
    ("--embed-batch", "99999999999999999999999"),
    ("--bank-size", "100000"),
    ("--reid-input-size", "100000 100000"),
    ("--offsets", "1e300"),
    ("--transit", "a:b:0:1e300"),
    ("--link-window", "1e300"),
    ("--transit", "a:a:0:5"),
]


@pytest.mark.parametrize("flag,value", BAD_FLAGS)
def test_bad_flag_value_is_one_line_naming_the_flag(capsys, tmp_path, flag, value):
    code, line = run_cli(capsys, tmp_path, flag, *(value.split(" ") if value else [""]))
    assert code == 2 and line.startswith(f"reidpipe: error: {flag}"), line


def test_empty_output_is_refused(capsys, tmp_path):
    code = main(["run", "--no-progress", "--sources", "x.mp4", "--output", ""])
    err = capsys.readouterr().err
    assert code == 2 and "--output" in err and "Traceback" not in err


def test_cuda_device_that_this_machine_lacks_is_named(capsys, tmp_path):
    import torch

    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"")
    code, line = run_cli(capsys, tmp_path, "--device", "cuda:7", "--reid", "hist", "--detections", tmp_path / "d.txt")
    assert code == 2 and "--device cuda:7" in line and "this machine has" in line


@pytest.mark.parametrize(
    "yaml_text,key",
    [
        ('stride: "two"\n', "stride"),
        ("sampler: 5\n", "sampler"),
        ("det_conf: .nan\n", "det_conf"),
        ("offsets: [.inf]\n", "offsets"),
        ("save_mot: 1\n", "save_mot"),
        ("link:\n  max_gap: .nan\n", "link.max_gap"),
        ("sampler:\n  every: 0\n", "sampler.every"),
        ("link:\n  transit: {'a:b': [5, 1]}\n", "link.transit"),
        ("link:\n  adjacent: ['a:a']\n", "link.adjacent"),
        ("link:\n  adjacent: ['a:b:c']\n", "link.adjacent"),
        ("names: ['../up']\n", "names"),
        ("device: tpu\n", "device"),
        ("imgsz: 320000\n", "imgsz"),
        ("queue_size: 100000000\n", "queue_size"),
        ("reconnect_backoff: 1.0e+300\n", "reconnect_backoff"),
        ("link:\n  knn: 1000000000\n", "link.knn"),
        ("engine:\n  chunk: 1000000000\n", "engine.chunk"),
        ("engine:\n  start_timeout: 1.0e+300\n", "engine.start_timeout"),
        ("retention: 1.0e+300\n", "retention"),
        ("start_times: ['9999-12-31T23:59:59']\n", "start_times"),
        ("openvino_precision: f64\n", "openvino_precision"),
    ],
)
def test_ill_typed_config_yaml_is_exit_10_naming_file_and_key(capsys, tmp_path, yaml_text, key):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    code, line = run_cli(capsys, tmp_path, "--config", cfg)
    assert code == 10 and "bad.yaml" in line and f"{key}:" in line, line


@pytest.mark.parametrize(
    "overrides",
    [
        {"stride": 0},
        {"offsets": [math.nan]},
        {"sampler": {"bank": 0}},
        {"link": {"max_gap": math.inf}},
        {"names": ["a/b"]},
        {"det_conf": "0.3"},
        {"output": ""},
        {"openvino_precision": "int8"},
    ],
)
def test_python_api_refuses_the_same_values(overrides):
    with pytest.raises(ConfigError) as exc:
        reidpipe.Pipeline(**overrides)
    assert next(iter(overrides)) in str(exc.value)


def test_a_value_with_a_newline_is_shown_on_the_error_line(capsys, tmp_path):
    code, line = run_cli(capsys, tmp_path, "--names", "a\nb")
    assert code == 2 and line.startswith("reidpipe: error: --names 'a\\nb'"), line


def test_a_key_given_twice_in_a_config_yaml_is_named_with_its_line(capsys, tmp_path):
    cfg = tmp_path / "twice.yaml"
    cfg.write_text("stride: 2\nlink:\n  knn: 5\n  knn: 6\n")
    code, line = run_cli(capsys, tmp_path, "--config", cfg)
    assert code == 10 and "twice.yaml" in line and "line 4" in line and "'knn' is given twice" in line, line


def test_a_config_that_is_not_a_regular_file_or_too_big_is_refused_unread(capsys, tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("# padding\n" * 200_000)  # 2 MB of comments
    for cfg, words in (("/dev/zero", "not a regular file"), (tmp_path, "not a regular file"), (big, "over")):
        code, line = run_cli(capsys, tmp_path, "--config", cfg)
        assert code == 10 and words in line, line


def test_default_camera_names_are_safe_file_names(tmp_path):
    from reidpipe.pipeline.io.sources import default_names

    assert default_names(["my video (1).mp4", "rtsp://h/x", ".mp4"]) == ["my_video__1_", "cam1", "mp4"]


def test_trajectories_are_strict_json(tmp_path):
    src = SourceInfo(camera="a", uri="a.mp4", fps=math.nan, width=1, height=1)
    with pytest.raises(ValueError):
        write_trajectories(tmp_path / "t.json", [src], [])
    assert not (tmp_path / "t.json").exists()
    src.fps = 10.0
    text = write_trajectories(tmp_path / "t.json", [src], []).read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
