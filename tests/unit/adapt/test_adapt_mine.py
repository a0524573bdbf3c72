"""Mining pseudo-identities from a run's identities and link evidence, choosing crops, and the
epochs a crop budget gives."""

from __future__ import annotations

from reidpipe.adapt.crops import CropRule, plan_track
from reidpipe.adapt.dataset import build_layout, file_name
from reidpipe.adapt.mine import LinkRule, MinedTrack, mine_run
from reidpipe.adapt.runs import CameraSource

LINKER = {
    "in_camera": {"cam1": {"median": 0.0, "scale": 0.2}, "cam2": {"median": 0.0, "scale": 0.2}},
    "cross_camera": {"cam1~cam2": {"median": 0.0, "scale": 0.2}},
}


def _track(cam, number, frames, score=0.8, margin=0.3, x=100.0):
    points = [{"frame": f, "t": f / 10, "bbox": [x, 50.0, x + 40.0, 150.0], "score": 0.9} for f in frames]
    return {"camera": cam, "track": number, "link": {"score": score, "margin": margin}, "points": points}


def _doc(*identities):
    return {"identities": [{"id": k, "tracks": list(t)} for k, t in enumerate(identities, start=1)], "linker": LINKER}


def _keys(mined):
    return [sorted((t.camera, t.track) for t in p.tracks) for p in mined.identities]


def test_confident_links_join_and_doubtful_ones_are_left_out():
    doc = _doc(
        [_track("cam1", 1, range(0, 20)), _track("cam2", 1, range(40, 60))],  # a confident cross-camera link
        [_track("cam1", 2, range(0, 20)), _track("cam2", 2, range(40, 60), margin=-0.05)],  # nearer someone else
        [_track("cam1", 3, range(0, 20), score=0.1), _track("cam2", 3, range(40, 60), score=0.1)],  # z 0.5 < 1
        [_track("cam1", 4, range(30, 50), score=0.0, margin=None)],  # failed the quality gate
        [_track("cam2", 5, range(0, 10), score=1.0, margin=None)],  # alone: one track is one person
    )
    mined = mine_run(doc, 1, LinkRule(min_margin=0.0, min_z=1.0))
    assert _keys(mined) == [
        [("cam1", 1), ("cam2", 1)],
        [("cam1", 2)],
        [("cam2", 5)],
    ]
    reasons = sorted((x.camera, x.track, x.reason) for x in mined.left_out)
    assert reasons == [
        ("cam1", 3, "uncertain_link"),
        ("cam1", 4, "no_evidence"),
        ("cam2", 2, "uncertain_link"),
        ("cam2", 3, "uncertain_link"),
    ]


def test_two_tracks_a_camera_saw_at_once_are_never_one_pseudo_identity():
    doc = _doc([_track("cam1", 1, range(0, 30)), _track("cam1", 2, range(25, 35)), _track("cam2", 3, range(50, 70))])
    mined = mine_run(doc, 1, LinkRule())
    assert _keys(mined) == [[("cam1", 1), ("cam2", 3)]]
    assert [(x.track, x.reason) for x in mined.left_out] == [(2, "coexists")]


def test_interpolated_points_are_not_crops_and_boxes_are_whole_alone_and_spread():
    raw = _track("cam1", 1, range(0, 40))
    raw["points"][0]["interpolated"] = True
    raw["points"][1]["bbox"] = [0.0, 50.0, 40.0, 150.0]  # cut by the left edge
    raw["points"][2]["bbox"] = [100.0, 50.0, 110.0, 70.0]  # 20 px tall
    track = MinedTrack(1, "cam1", 1, 1, [p for p in raw["points"] if not p.get("interpolated")])
    other = {("cam1", 3): [(105.0, 50.0, 145.0, 150.0)]}  # someone in front of the box at frame 3
    source = CameraSource("cam1", "x.mp4", 640, 480, 100)
    crops = plan_track(track, source, other, CropRule(per_track=8, min_height=48))
    frames = [c.frame for c in crops]
    assert len(frames) == 8 and frames[0] == 4 and frames[-1] == 39 and not {0, 1, 2, 3} & set(frames)
    assert all(b - a >= 4 for a, b in zip(frames, frames[1:]))  # evenly spaced, not the first 8


def test_held_out_people_are_seen_by_two_cameras_with_one_query_crop_per_camera():
    doc = _doc(*[[_track("cam1", k, range(0, 10), x=50.0 * k), _track("cam2", k, range(40, 50))] for k in range(1, 6)])
    mined = mine_run(doc, 2, LinkRule())
    source = CameraSource("cam", "x.mp4", 640, 480, 100)
    planned = [(p, [c for t in p.tracks for c in plan_track(t, source, {}, CropRule(4, 48))]) for p in mined.identities]
    layout = build_layout(planned, holdout=0.4, seed=0)
    held = [p for p in layout.people if p.held_out]
    assert len(held) == 2 and len(layout.people) == 5
    queries = [name for name, _ in layout.files["query"]]
    assert len(queries) == 4 and {n[:4] for n in queries} == {f"{p.pid:04d}" for p in held}
    assert len(layout.files["bounding_box_train"]) == 3 * 8 and len(layout.files["bounding_box_test"]) == 2 * 6
    assert file_name(7, 2, layout.people[0].crops[0]) == "0007_c2s2_000000_00.jpg"


def test_the_crop_budget_sets_the_epochs_and_the_last_quarter_drops_the_rate():
    from reidpipe.commands.adapt import _schedule

    assert _schedule(6000, 600) == ["stages.*.epochs=10", "stages.*.schedule.milestones=[9]"]
    assert _schedule(6000, 100_000)[0] == "stages.*.epochs=3"  # at least 3
    assert _schedule(10**7, 10)[0] == "stages.*.epochs=60"  # at most 60


def test_the_model_adapted_is_the_one_the_runs_recorded_and_unchanged(tmp_path):
    import pytest

    from reidpipe.adapt.runs import Run
    from reidpipe.commands.adapt import _runs_embedder
    from reidpipe.errors import CheckpointError, UsageError
    from reidpipe.pipeline.gallery.session import weights_sha256

    model, other = tmp_path / "a.onnx", tmp_path / "b.onnx"
    model.write_bytes(b"model a")
    other.write_bytes(b"model b")

    def run(path, sha=None, kind="onnx"):
        record = {
            "kind": kind,
            "sha256": sha or weights_sha256(str(path), kind),
            "settings": {"reid_weights": str(path)},
        }
        return Run(tmp_path, 1, {"embedder": record}, {})

    assert _runs_embedder([run(model), run(model)]) == str(model)
    with pytest.raises(UsageError, match="2 different embedders"):
        _runs_embedder([run(model), run(other)])
    with pytest.raises(CheckpointError, match="has changed since the run"):
        _runs_embedder([run(model, sha="0" * 64)])
    with pytest.raises(UsageError, match="give --init MODEL"):
        _runs_embedder([run(model, kind="hist")])
    with pytest.raises(UsageError, match="no record of its embedder"):
        _runs_embedder([Run(tmp_path, 1, {}, {})])


def test_the_labelled_set_gives_about_as_many_crops_as_the_mined_one_unless_told(tmp_path):
    import argparse

    from reidpipe.commands.adapt import _read_source, _source_mix
    from reidpipe.reid.datasets.synthetic import write_dataset

    root = write_dataset("market1501", tmp_path, ids=10, test_ids=2, per_cam=2, cams=2, size=(64, 32))
    args = argparse.Namespace(source_dataset="market1501", source_root=str(root), source_ids=None)
    records = _read_source(args)
    assert records is not None and len(records) == 40  # 10 people x 4 images
    mix = _source_mix(args, records, mined_crops=12)
    assert (mix["ids"], mix["crops"], mix["dataset"]) == (3, 12, "market1501")
    assert _source_mix(args, records, mined_crops=10**6)["ids"] == 10  # at most everyone
    args.source_ids = 7
    assert _source_mix(args, records, mined_crops=12)["ids"] == 7
    assert _read_source(argparse.Namespace(source_dataset=None, source_root=None, source_ids=None)) is None
