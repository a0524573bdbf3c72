"""``reidpipe demo`` end to end: the sample scene, public detections, the ``hist`` descriptor."""

from __future__ import annotations

import json

import pytest

from reidpipe.cli import main as cli_main


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One scene cache for the module: the second demo finds the scene already rendered."""
    return tmp_path_factory.mktemp("cache")


def test_demo_recovers_identities_across_cameras(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("REIDPIPE_CACHE", str(cache))
    out = tmp_path / "out"
    assert cli_main(["demo", "--output", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    # every output a user looks for
    for name in ("trajectories.json", "events.jsonl", "scores.json", "cam1.txt", "cam2.txt"):
        assert (out / name).is_file(), name
    traj = json.loads((out / "trajectories.json").read_text())
    assert traj["schema"] == "reidpipe.trajectories/1"
    assert [s["camera"] for s in traj["sources"]] == ["cam1", "cam2"]
    # the three people who walk from cam1 to cam2 are each one identity in both cameras, nobody else is
    assert sum(len(i["cameras"]) == 2 for i in traj["identities"]) == 3
    assert res["links"]["f1"] == pytest.approx(1.0) and res["links"]["tp"] == 3
    # scores reached on this scene (seed 0): multi-camera IDF1 0.955 (IDP 1.0), per-camera HOTA 0.82/0.84
    assert res["multi_camera"]["IDF1"] >= 0.955 - 0.02
    assert res["multi_camera"]["IDP"] >= 0.98
    for cam, hota in (("cam1", 0.82), ("cam2", 0.84)):
        assert res["per_camera"][cam]["HOTA"] >= hota - 0.03
        assert res["per_camera"][cam]["MOTA"] >= 0.88
        assert res["per_camera"][cam]["IDSW"] == 0
    assert json.loads((out / "scores.json").read_text())["links"]["f1"] == pytest.approx(1.0)
    # the scene was rendered into the cache, where the next demo finds it
    assert (cache / "demo" / "seed0" / "scene.json").is_file()


def test_demo_online_links_match_without_refinement(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("REIDPIPE_CACHE", str(cache))
    assert cli_main(["demo", "--output", str(tmp_path / "out"), "--online", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["run"]["refine"] is False
    # the online pass (camera-centred features, links made as tracks close) reaches the same links
    assert res["links"]["f1"] == pytest.approx(1.0)
    assert res["multi_camera"]["IDF1"] >= 0.955 - 0.02


def test_annotated_videos_draw_each_identity_in_its_colour_in_every_camera(tmp_path, cache, monkeypatch, capsys):
    """``--save-video``: one annotated video per camera, every frame of the source, each box drawn in the
    colour of its global id (supervision's palette), so a person who walks from cam1 to cam2 keeps the
    colour (and label) of the identity in both videos."""
    import cv2
    import numpy as np
    import supervision as sv

    monkeypatch.setenv("REIDPIPE_CACHE", str(cache))
    out = tmp_path / "out"
    assert cli_main(["demo", "--output", str(out), "--save-video", "--json"]) == 0
    capsys.readouterr()
    traj = json.loads((out / "trajectories.json").read_text())
    for s in traj["sources"]:
        cap = cv2.VideoCapture(str(out / f"{s['camera']}.mp4"))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == s["frames"]
        assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (
            s["width"],
            s["height"],
        )
        cap.release()
    travellers = [i for i in traj["identities"] if len(i["cameras"]) == 2]
    assert len(travellers) == 3
    for ident in travellers:
        expected = np.asarray(sv.ColorPalette.DEFAULT.by_idx(ident["id"]).as_bgr())
        for track in ident["tracks"]:
            p = track["points"][len(track["points"]) // 2]
            cap = cv2.VideoCapture(str(out / f"{track['camera']}.mp4"))
            cap.set(cv2.CAP_PROP_POS_FRAMES, p["frame"])
            ok, img = cap.read()
            cap.release()
            assert ok
            x1, y1, x2, y2 = (int(v) for v in p["bbox"])
            edge = np.median(img[y1 + 20 : y2 - 5, x1].astype(int), axis=0)  # the box's left side, below the label
            assert np.abs(edge - expected).max() <= 25, (ident["id"], track["camera"], edge, expected)
