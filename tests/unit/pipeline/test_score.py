"""``reidpipe score`` on hand-built cases with known answers (pipeline/score.py)."""

from __future__ import annotations

import json

import pytest

from reidpipe.cli import main as cli_main
from reidpipe.errors import InputNotFoundError, MalformedInputError, UsageError
from reidpipe.pipeline.score import score

# person -> camera -> x of its (fixed) box; every person is visible in frames 1..10 of its cameras
X = {"A": 10.0, "B": 110.0, "C": 210.0}
GT_ID = {"A": 1, "B": 2, "C": 3}
BOX_W, BOX_H, FRAMES = 40.0, 100.0, 10


def write_gt(path, people):
    lines = [f"{f},{GT_ID[p]},{X[p]},20,{BOX_W},{BOX_H},1,1,1" for f in range(1, FRAMES + 1) for p in people]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_pred(path, identities):
    """identities: {pred_id: [(camera, track, person), ...]}"""
    idents = []
    for pid, tracks in identities.items():
        idents.append(
            {
                "id": pid,
                "cameras": sorted({c for c, _, _ in tracks}),
                "first_seen": 0.0,
                "last_seen": 0.9,
                "tracks": [
                    {
                        "camera": c,
                        "track": t,
                        "link": {"score": 0.9, "margin": None},
                        "points": [
                            {
                                "frame": f - 1,
                                "t": (f - 1) / 10,
                                "score": 0.9,
                                "bbox": [X[p], 20.0, X[p] + BOX_W, 20.0 + BOX_H],
                            }
                            for f in range(1, FRAMES + 1)
                        ],
                    }
                    for c, t, p in tracks
                ],
            }
        )
    data = {
        "schema": "reidpipe.trajectories/1",
        "sources": [
            {"camera": c, "uri": f"{c}.mp4", "fps": 10.0, "width": 320, "height": 240, "frames": FRAMES}
            for c in ("cam1", "cam2")
        ],
        "identities": idents,
    }
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def gt(tmp_path):
    return [write_gt(tmp_path / "cam1_gt.txt", "AB"), write_gt(tmp_path / "cam2_gt.txt", "ABC")]


def test_perfect_prediction_scores_one(tmp_path, gt):
    pred = write_pred(
        tmp_path / "t.json",
        {1: [("cam1", 1, "A"), ("cam2", 4, "A")], 2: [("cam1", 2, "B"), ("cam2", 5, "B")], 3: [("cam2", 6, "C")]},
    )
    res = score(pred, [str(p) for p in gt])
    for cam in ("cam1", "cam2"):
        m = res["per_camera"][cam]
        assert m["HOTA"] == pytest.approx(1.0) and m["MOTA"] == pytest.approx(1.0) and m["IDF1"] == pytest.approx(1.0)
    assert res["multi_camera"]["IDF1"] == pytest.approx(1.0)
    assert res["multi_camera"]["gt_multi_camera_identities"] == 2
    assert res["links"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 2, "fp": 0, "fn": 0}


def test_wrong_cross_camera_links_values_computed_by_hand(tmp_path, gt):
    # A linked right; B's cam2 track split off (identity 3); C (cam2 only) wrongly joined B's cam1 track
    pred = write_pred(
        tmp_path / "t.json",
        {1: [("cam1", 1, "A"), ("cam2", 4, "A")], 2: [("cam1", 2, "B"), ("cam2", 6, "C")], 3: [("cam2", 5, "B")]},
    )
    res = score(pred, [str(p) for p in gt])
    # inside each camera the ids are consistent: per-camera scores stay perfect
    assert res["per_camera"]["cam1"]["IDF1"] == pytest.approx(1.0)
    assert res["per_camera"]["cam2"]["IDF1"] == pytest.approx(1.0)
    # across cameras: best one-to-one A-1 (20 boxes), B-3 (10), C-2 (10): IDTP 40 of 50 gt and 50 predicted
    assert res["multi_camera"]["IDF1"] == pytest.approx(0.8)
    assert res["multi_camera"]["IDP"] == pytest.approx(0.8) and res["multi_camera"]["IDR"] == pytest.approx(0.8)
    # cross-camera pairs: cam1/A-cam2/A TP; cam1/B-cam2/C FP; cam1/B-cam2/B FN
    assert res["links"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": 1, "fp": 1, "fn": 1}


def test_swapped_identities_in_second_camera(tmp_path, gt):
    pred = write_pred(
        tmp_path / "t.json",
        {1: [("cam1", 1, "A"), ("cam2", 5, "B")], 2: [("cam1", 2, "B"), ("cam2", 4, "A")], 3: [("cam2", 6, "C")]},
    )
    res = score(pred, [str(p) for p in gt])
    # A-1 gets 10 (cam1) of A's 20 boxes, B-2 10 of 20, C-3 10 of 10: IDTP 30 of 50 -> IDF1 0.6
    assert res["multi_camera"]["IDF1"] == pytest.approx(0.6)
    assert res["links"]["precision"] == 0.0 and res["links"]["recall"] == 0.0 and res["links"]["f1"] == 0.0


def test_gt_by_camera_name_and_bad_inputs(tmp_path, gt):
    pred = write_pred(
        tmp_path / "t.json",
        {1: [("cam1", 1, "A"), ("cam2", 4, "A")], 2: [("cam1", 2, "B"), ("cam2", 5, "B")], 3: [("cam2", 6, "C")]},
    )
    res = score(pred, [f"cam2={gt[1]}", f"cam1={gt[0]}"])
    assert res["links"]["f1"] == 1.0 and res["gt"]["cam1"] == str(gt[0])
    with pytest.raises(UsageError, match="cam2"):
        score(pred, [str(gt[0])])
    with pytest.raises(UsageError, match="camX"):
        score(pred, [f"camX={gt[0]}", str(gt[1])])
    with pytest.raises(InputNotFoundError, match="nope_gt.txt"):
        score(pred, [str(gt[0]), str(tmp_path / "nope_gt.txt")])
    bad = tmp_path / "bad_gt.txt"
    bad.write_text("1,1,10,20,40,100,1,1,1\n2,1,ten,20,40,100\n")
    with pytest.raises(MalformedInputError, match=r"bad_gt.txt:2"):
        score(pred, [str(gt[0]), str(bad)])
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(MalformedInputError, match="broken.json"):
        score(broken, [str(p) for p in gt])


def test_cli_json_and_exit_codes(tmp_path, gt, capsys):
    pred = write_pred(
        tmp_path / "t.json",
        {1: [("cam1", 1, "A"), ("cam2", 4, "A")], 2: [("cam1", 2, "B"), ("cam2", 5, "B")], 3: [("cam2", 6, "C")]},
    )
    assert cli_main(["score", "--pred", str(pred), "--gt", str(gt[0]), str(gt[1]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["multi_camera"]["IDF1"] == pytest.approx(1.0) and set(out["per_camera"]) == {"cam1", "cam2"}
    assert cli_main(["score", "--pred", str(pred), "--gt", str(gt[0]), str(gt[1])]) == 0
    assert "multi-camera" in capsys.readouterr().out
    assert cli_main(["score", "--pred", str(tmp_path / "none.json"), "--gt", str(gt[0]), str(gt[1])]) == 3
    assert "none.json" in capsys.readouterr().err


def split_by_camera(path, cam):
    """The same prediction as written by a run of ``cam`` alone (a gallery run: global ids kept)."""
    data = json.loads(path.read_text())
    data["sources"] = [s for s in data["sources"] if s["camera"] == cam]
    for ident in data["identities"]:
        ident["tracks"] = [t for t in ident["tracks"] if t["camera"] == cam]
    data["identities"] = [i for i in data["identities"] if i["tracks"]]
    out = path.with_name(f"{cam}_{path.name}")
    out.write_text(json.dumps(data))
    return out


def test_several_prediction_files_score_as_one_run(tmp_path, gt, capsys):
    """``--pred run1.json run2.json``: runs of one gallery (ids global across runs) merged by id."""
    pred = write_pred(
        tmp_path / "t.json",
        {1: [("cam1", 1, "A"), ("cam2", 4, "A")], 2: [("cam1", 2, "B"), ("cam2", 6, "C")], 3: [("cam2", 5, "B")]},
    )
    parts = [str(split_by_camera(pred, "cam1")), str(split_by_camera(pred, "cam2"))]
    one, merged = score(pred, [str(p) for p in gt]), score(parts, [str(p) for p in gt])
    assert merged["multi_camera"] == one["multi_camera"] and merged["links"] == one["links"]
    assert merged["pred"] == parts
    assert cli_main(["score", "--pred", *parts, "--gt", *map(str, gt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["multi_camera"]["IDF1"] == pytest.approx(0.8)
    assert cli_main(["score", "--pred", parts[0], parts[0], "--gt", *map(str, gt)]) == UsageError.exit_code
    assert "camera 'cam1' is in both" in capsys.readouterr().err
