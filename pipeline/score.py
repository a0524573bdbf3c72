"""Score a ``trajectories.json`` against MOTChallenge ground truth (``reidpipe score``).

Three families of figures:

1. **Per camera** — HOTA, MOTA and IDF1 (plus DetA, AssA, IDSW, IDP, IDR) of the camera's boxes,
   labelled with their *global* identity ids (what ``--save-mot`` writes), computed by
   ``trackers.eval.evaluate_mot_sequence`` (TrackEval-parity CLEAR, HOTA and Identity metrics; IoU
   threshold 0.5 for CLEAR/Identity). Ground-truth rows follow MOTChallenge rules there: rows with
   ``conf`` 0 or a non-pedestrian class are not scored, distractor classes suppress matching boxes.
2. **Multi-camera** IDF1 / IDP / IDR — the cameras are concatenated into one sequence with disjoint
   frame ranges (camera k's frames are shifted by the total length of cameras 0..k-1) and scored with
   the same Identity metric. Ground-truth ids are global, so the one-to-one assignment of ground-truth
   to predicted identities spans all cameras: a person correctly followed in one camera but given a
   different id in the next loses the second part (the MTMC IDF1 of Ristani et al., 2016).
3. **Cross-camera links** — every predicted track (one camera, one ``track`` of trajectories.json) is
   matched to the ground-truth id it overlaps most (the number of its points whose box has IoU >= 0.5
   with that id's box in the same frame; tracks with no such point match nobody). Over all pairs of
   tracks in *different* cameras: a pair is predicted linked when both tracks are in the same
   identity, truly linked when both match the same ground-truth id. Precision = TP / predicted links,
   recall = TP / true links, F1 their harmonic mean; precision (recall) is 1.0 when there is no
   predicted (true) link at all.

Which ground-truth file is which camera: ``CAM=PATH`` names it; plain paths are given, in order, to
the cameras of ``trajectories.json``'s ``sources`` that were not named.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from collections.abc import Mapping
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.errors import MalformedInputError, UsageError
from reidpipe.pipeline.io.export import read_trajectories
from reidpipe.pipeline.io.motfile import read_mot

GtRows = dict[int, list[tuple[int, float, float, float, float, float, int]]]  # frame -> (id, x, y, w, h, conf, cls)


def read_gt(path: str | Path) -> list[tuple[int, int, float, float, float, float, float, int]]:
    """Rows (frame 1-based, id, x, y, w, h, conf, class) of a MOTChallenge ground-truth file."""
    p = Path(path)
    rows = [
        (int(r[0]), int(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5]), float(r[6]), int(r[7]))
        for r in read_mot(p, "ground-truth").tolist()
    ]
    if not rows:
        raise MalformedInputError(f"{p}: ground-truth file holds no rows")
    return rows


def assign_gt(gt_args: list[str], cameras: list[str]) -> dict[str, Path]:
    """Map cameras to ground-truth files from ``--gt`` values (``CAM=PATH`` or plain, in order)."""
    named: dict[str, Path] = {}
    plain: list[Path] = []
    for g in gt_args:
        cam, sep, path = g.partition("=")
        if sep and cam in cameras:
            if cam in named:
                raise UsageError(f"--gt names camera {cam!r} twice")
            named[cam] = Path(path)
        elif sep and not Path(g).exists():
            raise UsageError(f"--gt {g}: camera {cam!r} is not in the predictions (cameras: {', '.join(cameras)})")
        else:
            plain.append(Path(g))
    rest = [c for c in cameras if c not in named]
    if len(plain) > len(rest):
        raise UsageError(f"{len(gt_args)} --gt files for {len(cameras)} camera(s) ({', '.join(cameras)})")
    if len(plain) < len(rest):
        missing = rest[len(plain) :]
        raise UsageError(
            f"no --gt file for camera(s) {', '.join(missing)}; give one per camera, in the "
            f"order of the predictions' sources, or as CAM=PATH"
        )
    named.update(zip(rest, plain))
    return {c: named[c] for c in cameras}


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from trackers.eval import box_iou

    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return box_iou(np.asarray(a, np.float64), np.asarray(b, np.float64), box_format="xywh")


def _pred_rows(data: dict[str, Any]) -> dict[str, list[tuple[int, int, int, float, float, float, float, float]]]:
    """camera -> rows (frame 1-based, global id, track, x, y, w, h, score)."""
    out: dict[str, list] = defaultdict(list)
    for ident in data["identities"]:
        for tr in ident["tracks"]:
            for p in tr["points"]:
                x1, y1, x2, y2 = (float(v) for v in p["bbox"])
                out[tr["camera"]].append(
                    (
                        int(p["frame"]) + 1,
                        int(ident["id"]),
                        int(tr["track"]),
                        x1,
                        y1,
                        max(x2 - x1, 1e-3),
                        max(y2 - y1, 1e-3),
                        float(p["score"]),
                    )
                )
    return out


def _write_mot(path: Path, rows: list[tuple], offset: int = 0) -> None:
    lines = [f"{f + offset},{i},{x:.3f},{y:.3f},{w:.3f},{h:.3f},{c:.4f},{k},-1" for f, i, x, y, w, h, c, k in rows]
    if not lines:  # an unconfirmed row (id -1) keeps the file valid and scores nothing
        lines = [f"{1 + offset},-1,0,0,1,1,0,-1,-1"]
    path.write_text("\n".join(lines) + "\n")


def _metrics(gt_path: Path, pred_path: Path, families: list[str]) -> dict[str, float]:
    from trackers.eval import evaluate_mot_sequence

    res = evaluate_mot_sequence(gt_path, pred_path, metrics=families)
    out: dict[str, float] = {}
    if res.HOTA is not None:
        out.update(HOTA=res.HOTA.HOTA, DetA=res.HOTA.DetA, AssA=res.HOTA.AssA)
    if res.CLEAR is not None:
        out.update(MOTA=res.CLEAR.MOTA, MOTP=res.CLEAR.MOTP, IDSW=int(res.CLEAR.IDSW))
    if res.Identity is not None:
        out.update(IDF1=res.Identity.IDF1, IDP=res.Identity.IDP, IDR=res.Identity.IDR)
    return {k: (float(v) if not isinstance(v, int) else v) for k, v in out.items()}


def _track_gt_ids(pred: list[tuple], gt: list[tuple]) -> dict[int, int | None]:
    """Predicted track -> the ground-truth id whose boxes it overlaps (IoU >= 0.5) in most frames."""
    gt_by_frame: dict[int, list[tuple]] = defaultdict(list)
    for f, tid, x, y, w, h, conf, cls in gt:
        if conf != 0 and cls == 1:
            gt_by_frame[f].append((tid, x, y, w, h))
    votes: dict[int, Counter] = defaultdict(Counter)
    pred_by_frame: dict[int, list[tuple]] = defaultdict(list)
    for f, _gid, track, x, y, w, h, _s in pred:
        pred_by_frame[f].append((track, x, y, w, h))
        votes.setdefault(track, Counter())
    for f, preds in pred_by_frame.items():
        gts = gt_by_frame.get(f)
        if not gts:
            continue
        iou = _iou_xywh(np.array([p[1:] for p in preds]), np.array([g[1:] for g in gts]))
        best = iou.argmax(1)
        for k, p in enumerate(preds):
            if iou[k, best[k]] >= 0.5:
                votes[p[0]][gts[best[k]][0]] += 1
    return {t: (c.most_common(1)[0][0] if c else None) for t, c in votes.items()}


def match_tracks(data: dict[str, Any], gt_paths: Mapping[str, str | Path]) -> dict[tuple[str, int], int | None]:
    """(camera, track) -> the ground-truth id the track matches (see :func:`_track_gt_ids`), for the
    cameras of ``gt_paths`` (camera -> ground-truth file) in a parsed trajectories.json."""
    pred = _pred_rows(data)
    return {
        (cam, track): gid
        for cam, path in gt_paths.items()
        for track, gid in _track_gt_ids(pred.get(cam, []), read_gt(path)).items()
    }


def link_scores(tracks: list[tuple[str, int, int, int | None]]) -> dict[str, float | int]:
    """tracks: (camera, track, predicted identity, matched ground-truth id or None)."""
    tp = fp = fn = 0
    for (ca, _, pa, ga), (cb, _, pb, gb) in combinations(tracks, 2):
        if ca == cb:
            continue
        pred_same = pa == pb
        true_same = ga is not None and ga == gb
        tp += pred_same and true_same
        fp += pred_same and not true_same
        fn += true_same and not pred_same
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp, "fp": fp, "fn": fn}


def read_predictions(paths: list[str | Path]) -> dict[str, Any]:
    """One trajectories document of several runs' (``--pred run1/trajectories.json run2/...``, e.g. the
    runs of one gallery, whose ids are global across runs): their sources side by side, identities of
    the same id merged. A camera in two files is refused (its frames would collide)."""
    docs = [read_trajectories(p) for p in paths]
    if len(docs) == 1:
        return docs[0]
    seen: dict[str, str] = {}
    merged: dict[int, dict[str, Any]] = {}
    for p, d in zip(paths, docs):
        for src in d["sources"]:
            if src["camera"] in seen:
                raise UsageError(f"camera {src['camera']!r} is in both {seen[src['camera']]} and {p}; score them apart")
            seen[src["camera"]] = str(p)
        for ident in d["identities"]:
            into = merged.setdefault(int(ident["id"]), {**ident, "tracks": []})
            into["tracks"] = into["tracks"] + ident["tracks"]
    return {
        **docs[0],
        "sources": [s for d in docs for s in d["sources"]],
        "identities": [merged[k] for k in sorted(merged)],
    }


def score(pred_path: str | Path | list[str | Path], gt: list[str] | dict[str, str | Path]) -> dict[str, Any]:
    """Score ``pred_path`` (a trajectories.json, or a list of them: :func:`read_predictions`) against
    ground truth; see the module docstring. ``gt`` is a list of ``--gt`` values or a dict camera -> path."""
    paths = list(pred_path) if isinstance(pred_path, (list, tuple)) else [pred_path]
    data = read_predictions(paths)
    cameras = [s["camera"] for s in data["sources"]]
    if isinstance(gt, dict):
        unknown = [c for c in gt if c not in cameras]
        if unknown:
            raise UsageError(f"ground truth for unknown camera(s) {unknown}; the predictions have {cameras}")
        gt_paths = {c: Path(p) for c, p in gt.items()}
    else:
        gt_paths = assign_gt(list(gt), cameras)
    gt_rows = {c: read_gt(p) for c, p in gt_paths.items()}
    pred = _pred_rows(data)
    frames_of = {s["camera"]: s.get("frames") or 0 for s in data["sources"]}

    per_camera: dict[str, dict[str, float]] = {}
    tracks: list[tuple[str, int, int, int | None]] = []
    with tempfile.TemporaryDirectory(prefix="reidpipe-score-") as tmp:
        tmpd = Path(tmp)
        all_gt, all_pred, offset = [], [], 0
        for cam in gt_paths:
            g = gt_rows[cam]
            prows = pred.get(cam, [])
            gfile, pfile = tmpd / f"{cam}_gt.txt", tmpd / f"{cam}_pred.txt"
            gfile.write_text("".join(f"{f},{i},{x},{y},{w},{h},{c},{k},1\n" for f, i, x, y, w, h, c, k in g))
            _write_mot(pfile, [(f, gid, x, y, w, h, s, -1) for f, gid, _t, x, y, w, h, s in prows])
            per_camera[cam] = _metrics(gfile, pfile, ["CLEAR", "HOTA", "Identity"])
            per_camera[cam]["gt_ids"] = len({r[1] for r in g if r[6] != 0 and r[7] == 1})
            per_camera[cam]["pred_tracks"] = len({r[2] for r in prows})
            # multi-camera: shift this camera's frames after the previous cameras'
            all_gt += [(f + offset, i, x, y, w, h, c, k) for f, i, x, y, w, h, c, k in g]
            all_pred += [(f + offset, gid, x, y, w, h, s, -1) for f, gid, _t, x, y, w, h, s in prows]
            span = max([int(frames_of.get(cam) or 0)] + [r[0] for r in g] + [r[0] for r in prows])
            offset += span
            owner = {r[2]: r[1] for r in prows}
            for track, gid in _track_gt_ids(prows, g).items():
                tracks.append((cam, track, owner[track], gid))
        gfile, pfile = tmpd / "all_gt.txt", tmpd / "all_pred.txt"
        gfile.write_text("".join(f"{f},{i},{x},{y},{w},{h},{c},{k},1\n" for f, i, x, y, w, h, c, k in all_gt))
        _write_mot(pfile, all_pred)
        multi = _metrics(gfile, pfile, ["Identity"])
    gt_multi = {r[1] for rows in gt_rows.values() for r in rows}
    cams_of = defaultdict(set)
    for cam, rows in gt_rows.items():
        for r in rows:
            cams_of[r[1]].add(cam)
    return {
        "pred": str(paths[0]) if len(paths) == 1 else [str(p) for p in paths],
        "gt": {c: str(p) for c, p in gt_paths.items()},
        "per_camera": per_camera,
        "multi_camera": {
            "IDF1": multi["IDF1"],
            "IDP": multi["IDP"],
            "IDR": multi["IDR"],
            "gt_identities": len(gt_multi),
            "gt_multi_camera_identities": sum(len(v) > 1 for v in cams_of.values()),
            "pred_identities": len(data["identities"]),
        },
        "links": link_scores(tracks),
    }


def format_report(res: dict[str, Any]) -> str:
    lines = [
        f"{'camera':<12}{'HOTA':>8}{'MOTA':>8}{'IDF1':>8}{'DetA':>8}{'AssA':>8}{'IDSW':>6}{'gt ids':>8}{'tracks':>8}"
    ]
    for cam, m in res["per_camera"].items():
        lines.append(
            f"{cam:<12}{100 * m['HOTA']:8.2f}{100 * m['MOTA']:8.2f}{100 * m['IDF1']:8.2f}"
            f"{100 * m['DetA']:8.2f}{100 * m['AssA']:8.2f}{m['IDSW']:6d}{m['gt_ids']:8d}{m['pred_tracks']:8d}"
        )
    mc, lk = res["multi_camera"], res["links"]
    lines.append(
        f"multi-camera  IDF1 {100 * mc['IDF1']:.2f}  IDP {100 * mc['IDP']:.2f}  IDR {100 * mc['IDR']:.2f}"
        f"  ({mc['pred_identities']} predicted identities, {mc['gt_identities']} true, "
        f"{mc['gt_multi_camera_identities']} seen by several cameras)"
    )
    lines.append(
        f"cross-camera links  precision {100 * lk['precision']:.2f}  recall {100 * lk['recall']:.2f}"
        f"  F1 {100 * lk['f1']:.2f}  (TP {lk['tp']}, FP {lk['fp']}, FN {lk['fn']})"
    )
    return "\n".join(lines)


__all__ = ["assign_gt", "format_report", "link_scores", "match_tracks", "read_gt", "score"]
