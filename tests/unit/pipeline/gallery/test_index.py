"""The FAISS indexes (pipeline/gallery/index.py) are rebuilt from the database when behind it."""

from __future__ import annotations

import json

import pytest

from reidpipe.pipeline.gallery.index import Indexes
from reidpipe.pipeline.gallery.store import Store

from .runs import T0, split_runs

pytest.importorskip("faiss", reason="faiss-cpu (the [faiss] / [dev] extra) is not installed")


def test_index_behind_the_database_is_rebuilt(tmp_path):
    g, ts, *_ = split_runs(tmp_path, T0)
    (g / "tracklets.faiss").unlink()
    with Store.open(g, write=True) as store:
        ix = Indexes.open(store, 64, save=True)
        assert ix.rebuilt and len(ix.tracklets) == len(ts) and ix.matches_database() == []
    state = json.loads((g / "index.json").read_text())
    (g / "index.json").write_text(json.dumps({**state, "version": state["version"] - 1}))  # a crash before saving
    with Store.open(g) as store:
        assert Indexes.open(store, 64, save=False).rebuilt
