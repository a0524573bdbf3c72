"""Dataset readers on tiny datasets written in each official layout."""

from __future__ import annotations

import pytest

from reidpipe.errors import DatasetError
from reidpipe.reid.datasets.readers import build_dataset
from reidpipe.reid.datasets.synthetic import write_dataset


def _stats(ds):
    return {k: (v["ids"], v["images"], v["cameras"]) for k, v in ds.stats().items()}


@pytest.mark.parametrize(
    "layout,name,kw",
    [
        ("market1501", "market1501", {}),
        ("dukemtmcreid", "dukemtmcreid", {}),
        ("occluded_duke", "occluded_duke", {}),
        ("msmt17", "msmt17", {"version": 1}),
        ("msmt17", "msmt17", {"version": 2}),
        ("cuhk03_np", "cuhk03_labeled", {}),
        ("cuhk03_np", "cuhk03_detected", {}),
        ("cuhk03_mat", "cuhk03_labeled", {}),
        ("cuhk03_mat", "cuhk03_detected", {}),
    ],
)
def test_train_query_gallery_counts(tmp_path, layout, name, kw):
    write_dataset(layout, tmp_path, ids=4, test_ids=3, per_cam=2, cams=2, size=(16, 8), **kw)
    ds = build_dataset(name, tmp_path)  # the parent folder: the reader finds the dataset folder in it
    # 4 train ids x 2 cameras x 2 images; 3 test ids: 1 query each (camera 1), the other 3 in the gallery
    assert _stats(ds) == {"train": (4, 16, 2), "query": (3, 3, 1), "gallery": (3, 9, 2)}
    assert sorted({r.pid for r in ds.train}) == [0, 1, 2, 3]  # contiguous training labels
    assert {r.camid for r in ds.gallery} == {0, 1}  # 0-based cameras
    # evaluation keeps the dataset's own ids (MSMT17's list files number test identities from 0)
    assert {r.pid for r in ds.query} == {r.pid for r in ds.gallery}
    assert sorted({r.pid for r in ds.query}) == ([0, 1, 2] if name == "msmt17" else [5, 6, 7])
    assert all(r.rel and not r.rel.startswith("/") for r in ds.train)
    assert "# ids" in ds.table() and "train" in ds.table()


def test_market_junk_dropped_and_distractors_kept(tmp_path):
    write_dataset("market1501", tmp_path, ids=3, test_ids=2, size=(16, 8), distractors=3, junk=2)
    ds = build_dataset("market1501", tmp_path / "Market-1501-v15.09.15")
    assert -1 not in {r.pid for r in ds.gallery + ds.query + ds.train}
    assert sum(r.pid == 0 for r in ds.gallery) == 3
    assert len(ds.gallery) == 2 * 3 + 3


def test_msmt17_train_includes_val_list(tmp_path):
    d = write_dataset("msmt17", tmp_path, ids=3, test_ids=2, size=(16, 8))
    n_val = len((d / "list_val.txt").read_text().split())
    assert n_val > 0
    assert len(build_dataset("msmt17", tmp_path).train) == 3 * 2 * 2


@pytest.mark.parametrize(
    "layout,name,q,g", [("partial_reid", "partial_reid", 6, 6), ("partial_ilids", "partial_ilids", 3, 3)]
)
def test_test_only_sets(tmp_path, layout, name, q, g):
    write_dataset(layout, tmp_path, ids=0, test_ids=3, per_cam=2, size=(16, 8))
    ds = build_dataset(name, tmp_path)
    assert ds.train == []
    assert _stats(ds)["query"] == (3, q, 1) and _stats(ds)["gallery"] == (3, g, 1)
    assert {r.camid for r in ds.query} == {0} and {r.camid for r in ds.gallery} == {1}


@pytest.mark.parametrize("layout", ["custom_folders", "custom_market"])
def test_custom_layouts(tmp_path, layout):
    d = write_dataset(layout, tmp_path, ids=4, test_ids=3, per_cam=2, cams=2, size=(16, 8))
    ds = build_dataset("custom", d)
    assert _stats(ds) == {"train": (4, 16, 2), "query": (3, 3, 1), "gallery": (3, 9, 2)}
    q_ids = {r.pid for r in ds.query}
    assert q_ids == {r.pid for r in ds.gallery}  # same identity numbering across splits


def test_custom_folders_without_camera_info(tmp_path):
    for split, n in (("query", 1), ("gallery", 2)):
        for pid in ("alice", "bob"):
            d = tmp_path / split / pid
            d.mkdir(parents=True)
            for i in range(n):
                (d / f"{i}.jpg").write_bytes(b"")
    ds = build_dataset("custom", tmp_path)
    assert {r.camid for r in ds.query} == {0} and {r.camid for r in ds.gallery} == {1}
    assert {r.pid for r in ds.query} == {r.pid for r in ds.gallery} == {1, 2}


def test_wrong_root_names_what_was_expected(tmp_path):
    with pytest.raises(DatasetError, match="bounding_box_train"):
        build_dataset("market1501", tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        build_dataset("dukemtmcreid", tmp_path / "nope")
    with pytest.raises(DatasetError, match="list_train.txt"):
        build_dataset("msmt17", tmp_path)
    with pytest.raises(DatasetError, match="cuhk03_new_protocol_config_labeled.mat"):
        build_dataset("cuhk03_labeled", tmp_path)
    with pytest.raises(DatasetError, match="Probe"):
        build_dataset("partial_ilids", tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset 'viper'"):
        build_dataset("viper", tmp_path)


def test_badly_named_file_is_reported(tmp_path):
    d = write_dataset("market1501", tmp_path, ids=2, test_ids=1, size=(16, 8))
    (d / "query" / "holiday.jpg").write_bytes(b"")
    with pytest.raises(DatasetError, match="holiday.jpg"):
        build_dataset("market1501", d)
