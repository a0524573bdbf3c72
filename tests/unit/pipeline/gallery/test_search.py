"""`reidpipe search --identity` (pipeline/gallery/search.py) over a gallery of two runs."""

from __future__ import annotations

import json

import pytest

from reidpipe.cli import main
from reidpipe.errors import UsageError

from .runs import T0, split_runs

pytest.importorskip("faiss", reason="faiss-cpu (the [faiss] / [dev] extra) is not installed")


def test_search_by_identity_lists_the_nearest_others(tmp_path, capsys):
    g, *_ = split_runs(tmp_path, T0)
    assert main(["search", "--gallery", str(g), "--identity", "2", "--top", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert len(res) == 3 and all(r["identity"] != 2 for r in res)
    assert res[0]["similarity"] >= res[1]["similarity"] >= res[2]["similarity"]
    assert res[0]["sightings"] and res[0]["first_seen"].startswith("2026-11-02")
    assert main(["search", "--gallery", str(g), "--identity", "99999"]) == UsageError.exit_code
