"""`reidpipe gallery info / forget / prune / check` (pipeline/gallery/info.py) and their counts."""

from __future__ import annotations

import json

import pytest

from reidpipe.cli import main
from reidpipe.errors import UsageError

from .runs import T0, split_runs

pytest.importorskip("faiss", reason="faiss-cpu (the [faiss] / [dev] extra) is not installed")


def test_cli_prune_forget_info_and_counts(tmp_path, capsys):
    g, ts, *_ = split_runs(tmp_path, T0)
    assert main(["gallery", "info", "--gallery", str(g), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["tracklets"] == len(ts) and info["images_stored"] == 0
    assert [c["camera"] for c in info["cameras"]] == ["cam0", "cam1"]
    assert main(["gallery", "forget", "--gallery", str(g), "--identity", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["identities"] == 1
    assert main(["gallery", "forget", "--gallery", str(g), "--identity", "1"]) == UsageError.exit_code
    assert "--identity 1: no such identity" in capsys.readouterr().err
    assert main(["gallery", "prune", "--gallery", str(g), "--older-than", "1d", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["identities"] == info["identities"] - 1  # all older than a day
    assert main(["gallery", "check", "--gallery", str(g)]) == 0
