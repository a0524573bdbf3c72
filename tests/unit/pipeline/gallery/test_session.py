"""The persistent gallery (pipeline/gallery/) on synthetic tracklets: identities continue across runs
(within the linking window through the linker, beyond it by appearance), prune/forget remove exactly
what they should from the database and both FAISS indexes, the lock refuses a second writer, the
indexes are rebuilt when behind, a different model is refused."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from reidpipe.cli import main
from reidpipe.errors import GalleryLockedError, GalleryMismatchError, UsageError
from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.export import order_identities
from reidpipe.pipeline.gallery.index import Indexes
from reidpipe.pipeline.gallery.info import check
from reidpipe.pipeline.gallery.retention import forget, prune
from reidpipe.pipeline.gallery.session import GallerySession
from reidpipe.pipeline.gallery.store import Store
from reidpipe.pipeline.gallery.times import iso, parse_duration, parse_iso
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.link_synthetic import pairwise_scores, synthetic_tracklets
from reidpipe.pipeline.types import SourceInfo

pytest.importorskip("faiss", reason="faiss-cpu (the [faiss] / [dev] extra) is not installed")

DAY = 86400.0
WRITTEN: dict = {}  # what the last gallery_run wrote
T0 = parse_iso("2026-11-02T09:00:00")


def people(seed: int = 0):
    ts, labels = synthetic_tracklets(160, dim=64, cameras=2, seed=seed, noise=0.5, return_labels=True)
    return ts, labels


def config(gallery, start: float, **kw) -> PipelineConfig:
    cfg = PipelineConfig(reid="hist", gallery=str(gallery), start_times=[iso(start)], output=str(gallery / "out"))
    return cfg.replace(link={"refine": True, "fallback_similarity": 0.5}, **kw)


def gallery_run(cfg: PipelineConfig, tracklets, camera: str):
    """What the runner does with a gallery, without video: prime, link, commit."""
    session = GallerySession.open(cfg, [f"{camera}.mp4"])
    try:
        span = max(t.end_t for t in tracklets) + 1
        linker = Linker(cfg.link, [camera])
        session.prime(linker, [SourceInfo(camera=camera, uri="x", fps=10.0, width=1, height=1, frames=int(span * 10))])
        linker.add_many([replace(t) for t in tracklets])
        out = session.commit(order_identities(linker.finalize()), session.run_tracklets(linker))
    finally:
        session.close()
    WRITTEN.update(session.written)
    return {t.key: ident.id for ident in out for t in ident.tracklets}


def split_runs(tmp_path, second_start: float):
    ts, labels = people()
    lab = {t.key: int(labels[k]) for k, t in enumerate(ts)}
    g = tmp_path / "g"
    ids = gallery_run(config(g, T0), [t for t in ts if t.camera == "cam0"], "cam0")
    shift = second_start - T0
    cam1 = [t for t in ts if t.camera == "cam1"]
    ids |= gallery_run(config(g, T0 + shift), cam1, "cam1")
    keys = sorted(ids)
    return g, ts, labels, pairwise_scores(np.array([lab[k] for k in keys]), np.array([ids[k] for k in keys]))


def test_two_runs_in_the_window_link_as_one_run(tmp_path):
    g, ts, labels, two = split_runs(tmp_path, T0)
    single = order_identities(Linker(config(g, T0).link, ["cam0", "cam1"]).link([replace(t) for t in ts]))
    gid = {t.key: i.id for i in single for t in i.tracklets}
    one = pairwise_scores(labels, np.array([gid[t.key] for t in ts]))
    assert two["f1"] >= one["f1"] - 0.03, (two, one)
    assert two["f1"] > 0.8
    with Store.open(g) as store:
        assert store.count("tracklets") == len(ts)
        assert check(store) == []


def test_a_run_a_day_later_continues_identities_by_appearance(tmp_path):
    g, ts, labels, later = split_runs(tmp_path, T0 + DAY)
    assert later["precision"] > 0.95, later  # beyond the window: appearance alone, a strict level
    assert later["recall"] > 0.9, later


@pytest.mark.parametrize("without_crop", ["some", "all"])
def test_identities_without_an_embedded_crop_get_fresh_ids_beyond_the_window(tmp_path, without_crop):
    """A run a day later whose tracks were never embedded (no crop: too short, cut by --max-frames,
    a detector's small boxes) is compared by appearance only where it has a feature; the others get
    fresh ids, and everything is written to the gallery."""
    ts, _ = people()
    g = tmp_path / "g"
    gallery_run(config(g, T0), [t for t in ts if t.camera == "cam0"], "cam0")
    cam1 = [t for t in ts if t.camera == "cam1"]
    blind = cam1 if without_crop == "all" else cam1[::3]
    for t in blind:
        t.feature, t.qualities = None, []
    ids = gallery_run(config(g, T0 + DAY), cam1, "cam1")
    assert set(ids) == {t.key for t in cam1}  # every track of the run has its global id
    assert WRITTEN["identities"] == len(set(ids.values()))
    if without_crop == "some":
        assert WRITTEN["beyond"] > 0  # the ones with a feature are still matched by appearance
    with Store.open(g) as store:
        assert store.count("tracklets") == len(ts) - len(cam1) + len(cam1)
        assert check(store) == []


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


def test_a_second_writer_is_refused_with_one_line(tmp_path, capsys):
    g, *_ = split_runs(tmp_path, T0)
    with Store.open(g, write=True):
        with pytest.raises(GalleryLockedError, match="in use by another process"):
            Store.open(g, write=True)
        assert main(["gallery", "prune", "--gallery", str(g), "--older-than", "30d"]) == GalleryLockedError.exit_code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "in use by another process" in err[0]
        assert main(["gallery", "info", "--gallery", str(g)]) == 0  # readers never wait for the writer
    Store.open(g, write=True).close()  # released


def test_a_run_that_fails_is_marked_failed_and_releases_the_gallery(tmp_path, capsys):
    from reidpipe.errors import InputNotFoundError

    g = tmp_path / "g"
    args = ["run", "--sources", str(tmp_path / "missing.mp4"), "--output", str(tmp_path / "o"), "--no-progress"]
    assert main([*args, "--reid", "hist", "--gallery", str(g)]) == InputNotFoundError.exit_code
    assert "missing.mp4" in capsys.readouterr().err
    with Store.open(g, write=True) as store:  # the lock was released
        assert store.db.execute("SELECT status FROM runs").fetchall() == [("failed",)]
        assert store.count("identities") == 0 and store.model is None


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


def test_another_model_is_refused(tmp_path):
    g, ts, *_ = split_runs(tmp_path, T0)
    weights = tmp_path / "other.onnx"
    weights.write_bytes(b"not the gallery's model")
    cfg = config(g, T0).replace(reid="onnx", reid_weights=str(weights))
    with Store.open(g) as store:
        dim = store.model.dim
    with pytest.raises(GalleryMismatchError, match="holds embeddings of hist") as exc:
        GallerySession.open(cfg, ["cam0.mp4"])
    # the other model's dimension is not known before its first embedding: not the gallery's own
    assert f"hist hist ({dim}-d); this run uses onnx " in str(exc.value)
    assert str(exc.value).count("-d)") == 1, exc.value
    Store.open(g, write=True).close()  # the refused run released the lock


def test_start_time_and_retention_flags(tmp_path, capsys):
    assert parse_duration("30d") == 30 * DAY and parse_duration("90m") == 5400 and parse_duration("0") is None
    assert parse_iso("2026-12-01T10:00:00+01:00") == parse_iso("2026-12-01T09:00:00Z") and parse_iso("x") is None
    base = ["run", "--sources", "a.mp4", "--output", str(tmp_path / "o")]
    assert main([*base, "--start-time", "2026-12-01"]) == UsageError.exit_code
    assert "--start-time and --retention need --gallery" in capsys.readouterr().err
    assert main([*base, "--gallery", str(tmp_path), "--start-time", "yesterday"]) == UsageError.exit_code
    assert "--start-time" in capsys.readouterr().err
    assert main([*base, "--gallery", str(tmp_path), "--retention", "soon"]) == UsageError.exit_code
    assert "--retention 'soon'" in capsys.readouterr().err


def test_search_by_identity_lists_the_nearest_others(tmp_path, capsys):
    g, *_ = split_runs(tmp_path, T0)
    assert main(["search", "--gallery", str(g), "--identity", "2", "--top", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert len(res) == 3 and all(r["identity"] != 2 for r in res)
    assert res[0]["similarity"] >= res[1]["similarity"] >= res[2]["similarity"]
    assert res[0]["sightings"] and res[0]["first_seen"].startswith("2026-11-02")
    assert main(["search", "--gallery", str(g), "--identity", "99999"]) == UsageError.exit_code


def test_bench_gallery_only_reports_query_time(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--gallery-only", "--gallery-sizes", "500,2000", "--gallery-dim", "32", "-o", str(out)]) == 0
    rows = json.loads(out.read_text())["gallery"]
    assert [r["embeddings"] for r in rows] == [500, 2000] and all(r["query_ms_median"] > 0 for r in rows)
    assert "gallery query time" in capsys.readouterr().out
    assert main(["bench", "--gallery-only", "--linker-only"]) == UsageError.exit_code
