"""prune / forget (pipeline/gallery/retention.py) remove exactly what they should from the database and
both FAISS indexes; --retention prunes after a run."""

from __future__ import annotations

import pytest

from reidpipe.pipeline.gallery.index import Indexes
from reidpipe.pipeline.gallery.retention import forget, prune
from reidpipe.pipeline.gallery.store import Store
from reidpipe.pipeline.gallery.times import parse_duration

from .runs import DAY, T0, WRITTEN, config, gallery_run, people, split_runs

pytest.importorskip("faiss", reason="faiss-cpu (the [faiss] / [dev] extra) is not installed")


def test_prune_and_forget_remove_exactly_their_rows_and_vectors(tmp_path):
    g, ts, *_ = split_runs(tmp_path, T0 + 40 * DAY)
    with Store.open(g, write=True) as store:
        ix = Indexes.open(store, 64, save=True)
        old = store.db.execute("SELECT COUNT(*) FROM identities WHERE last_seen < ?", (T0 + 20 * DAY,)).fetchone()[0]
        old_t = store.db.execute(
            "SELECT COUNT(*) FROM tracklets WHERE identity IN (SELECT id FROM identities WHERE last_seen < ?)",
            (T0 + 20 * DAY,),
        ).fetchone()[0]
        n_id, n_t = store.count("identities"), store.count("tracklets")
        assert 0 < old < n_id
        removed = prune(store, ix, T0 + 20 * DAY)
        assert (removed.identities, removed.tracklets) == (old, old_t)
        assert (removed.index_identities, removed.index_tracklets) == (old, old_t)
        assert (store.count("identities"), store.count("tracklets")) == (n_id - old, n_t - old_t)
        assert (len(ix.identities), len(ix.tracklets)) == (n_id - old, n_t - old_t)
        gid, k = store.db.execute("SELECT identity, COUNT(*) FROM tracklets GROUP BY identity LIMIT 1").fetchone()
        removed = forget(store, ix, gid)
        assert (removed.identities, removed.tracklets, removed.index_tracklets) == (1, k, k)
        assert store.db.execute("SELECT COUNT(*) FROM tracklets WHERE identity=?", (gid,)).fetchone()[0] == 0
        assert gid not in ix.identities.ids()
        assert ix.matches_database() == [] and store.integrity() == []
    with Store.open(g) as store:  # what was saved is what is left
        assert Indexes.open(store, 64, save=False).rebuilt is False


def test_run_retention_prunes_what_is_older_after_the_run(tmp_path):
    import time

    ts, _ = people()
    g = tmp_path / "g"
    gallery_run(config(g, T0), [t for t in ts if t.camera == "cam0"], "cam0")
    with Store.open(g) as store:
        n_old = store.count("identities")
    cam1 = [t for t in ts if t.camera == "cam1"]
    later = config(g, time.time() - 3600, retention=parse_duration("7d"))  # cam1 seen an hour ago
    ids = gallery_run(later, cam1, "cam1")
    assert WRITTEN["continued"] > 0  # a month-old identity seen again is kept (its last sighting is new)
    assert WRITTEN["pruned"] == n_old - WRITTEN["continued"]  # the others: last seen a month ago
    with Store.open(g) as store:
        assert store.count("identities") == len(set(ids.values()))
        assert store.db.execute("SELECT MIN(last_seen) FROM identities").fetchone()[0] > time.time() - 7 * DAY
