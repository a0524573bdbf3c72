"""GallerySession (pipeline/gallery/session.py) on synthetic tracklets: identities continue across runs
(within the linking window through the linker, beyond it by appearance), a failed run is marked and
releases the gallery, a different model is refused."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from reidpipe.cli import main
from reidpipe.errors import GalleryMismatchError
from reidpipe.pipeline.bench.synthetic import pairwise_scores
from reidpipe.pipeline.gallery.info import check
from reidpipe.pipeline.gallery.session import GallerySession
from reidpipe.pipeline.gallery.store import Store
from reidpipe.pipeline.io.export import order_identities
from reidpipe.pipeline.link import Linker

from .runs import DAY, T0, WRITTEN, config, gallery_run, people, split_runs

pytest.importorskip("faiss", reason="faiss-cpu (the [faiss] / [dev] extra) is not installed")


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


def test_a_run_that_fails_is_marked_failed_and_releases_the_gallery(tmp_path, capsys):
    from reidpipe.errors import InputNotFoundError

    g = tmp_path / "g"
    args = ["run", "--sources", str(tmp_path / "missing.mp4"), "--output", str(tmp_path / "o"), "--no-progress"]
    assert main([*args, "--reid", "hist", "--gallery", str(g)]) == InputNotFoundError.exit_code
    assert "missing.mp4" in capsys.readouterr().err
    with Store.open(g, write=True) as store:  # the lock was released
        assert store.db.execute("SELECT status FROM runs").fetchall() == [("failed",)]
        assert store.count("identities") == 0 and store.model is None


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
