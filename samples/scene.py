"""A deterministic two-camera demo scene with its ground truth (``reidpipe demo``, the e2e tests).

Two cameras, ``cam1`` and ``cam2``, watch two places along one walkway (non-overlapping views, both
clocks start together). Seven people in distinct clothing (shirt colour and pattern: plain,
horizontal stripes, vertical stripes, checks; trousers colour) walk across the views; three are seen
by cam1 then, after a 2-3 s transit, by cam2; two only by cam1 and two only by cam2; several are in view
at once and cross in front of each other (the nearer one, lower in the image, hides part of the
farther one). The same clothes look different per camera: cam1 is dim and warm with a grey tiled
background and smaller people (far camera); cam2 is bright and cool with a green/brown background
and larger people. Walking is animated (legs and arms swing), and the whole frame has mild noise.

Files written in ``out_dir`` (MOTChallenge conventions, frames 1-based)::

    cam1.mp4, cam2.mp4            320x240, 10 fps, 150 frames (15 s), mp4v
    cam1_gt.txt, cam2_gt.txt      frame,id,x,y,w,h,1,1,visibility   ids are GLOBAL across cameras
    cam1_det.txt, cam2_det.txt    frame,-1,x,y,w,h,conf,-1,-1,-1    public detections
    scene.json                    seed, version, people, file sizes and sha256 (the cache key)

Ground truth holds every box whose visible share (not hidden by nearer people, inside the frame)
is at least 0.15, clipped to the frame. Public detections are the ground-truth boxes with visibility
>= 0.35, jittered by ~2 px, with confidence 0.55-0.98 (lower when occluded), about 3% missed, plus a
few low-confidence (<= 0.45) false positives on the background. gt/det are byte-identical for the
same seed; the videos are re-rendered only when a file is missing or altered.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VERSION = 1
WIDTH, HEIGHT, FPS, FRAMES = 320, 240, 10, 150
CAMERAS = ("cam1", "cam2")


@dataclass(frozen=True)
class Person:
    pid: int
    shirt: tuple[int, int, int]  # BGR
    pattern: str  # plain | hstripes | vstripes | checks
    accent: tuple[int, int, int]  # BGR of the pattern
    trousers: tuple[int, int, int]
    skin: tuple[int, int, int]


@dataclass(frozen=True)
class Walk:
    pid: int
    camera: str
    t0: float  # enters (s)
    t1: float  # leaves (s)
    x0: float  # box centre x at t0 (px)
    x1: float  # box centre x at t1
    foot_y: float  # y of the feet (depth: larger is nearer)


PEOPLE = [
    Person(1, (40, 40, 210), "plain", (0, 0, 0), (140, 80, 30), (120, 160, 210)),
    Person(2, (60, 170, 50), "hstripes", (235, 235, 235), (35, 35, 35), (100, 140, 190)),
    Person(3, (30, 200, 230), "plain", (0, 0, 0), (120, 120, 120), (130, 170, 220)),
    Person(4, (220, 220, 220), "vstripes", (40, 40, 40), (40, 80, 120), (90, 120, 170)),
    Person(5, (190, 90, 30), "checks", (240, 240, 240), (150, 190, 210), (120, 160, 210)),
    Person(6, (150, 40, 140), "plain", (0, 0, 0), (225, 225, 225), (110, 150, 200)),
    Person(7, (20, 120, 240), "hstripes", (60, 20, 20), (90, 40, 20), (120, 160, 210)),
]

# cam1: far camera (people ~80-100 px), cam2: near camera (~105-125 px); transit cam1 -> cam2 2-4 s
WALKS = [
    Walk(1, "cam1", 0.0, 5.5, -10, 330, 200),
    Walk(2, "cam1", 0.5, 6.5, 330, -10, 180),
    Walk(3, "cam1", 2.5, 9.0, -10, 330, 215),
    Walk(5, "cam1", 5.5, 11.0, 330, -10, 195),
    Walk(6, "cam1", 8.0, 14.5, -10, 330, 225),
    Walk(4, "cam2", 0.0, 6.0, 330, -10, 225),
    Walk(1, "cam2", 8.0, 13.0, -10, 330, 215),
    Walk(2, "cam2", 9.0, 14.8, 330, -10, 235),
    Walk(7, "cam2", 1.0, 7.5, -10, 330, 205),
    Walk(5, "cam2", 13.5, 16.0, -10, 330, 230),
]

CAMERA_LOOK: dict[str, dict[str, Any]] = {
    # gain per BGR channel (lighting), person height at foot_y = 240 (scale), background colours
    "cam1": {
        "gain": (0.78, 0.85, 0.98),
        "height_at_bottom": 104.0,
        "wall": (120, 125, 130),
        "floor": (95, 95, 100),
        "tile": (80, 80, 85),
    },
    "cam2": {
        "gain": (1.12, 1.05, 0.92),
        "height_at_bottom": 132.0,
        "wall": (70, 120, 80),
        "floor": (60, 90, 120),
        "tile": (50, 75, 100),
    },
}


def _box_at(w: Walk, t: float, cam: str) -> tuple[float, float, float, float] | None:
    if not (w.t0 <= t <= w.t1):
        return None
    a = (t - w.t0) / (w.t1 - w.t0)
    cx = w.x0 + a * (w.x1 - w.x0)
    h = CAMERA_LOOK[cam]["height_at_bottom"] * (0.55 + 0.45 * w.foot_y / HEIGHT)
    bw = 0.4 * h
    return cx - bw / 2, w.foot_y - h, cx + bw / 2, w.foot_y


def _background(cam: str, rng: np.random.Generator) -> np.ndarray:
    look = CAMERA_LOOK[cam]
    img = np.empty((HEIGHT, WIDTH, 3), np.float32)
    horizon = 110 if cam == "cam1" else 95
    img[:horizon] = look["wall"]
    img[horizon:] = look["floor"]
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    tiles = ((xx // 24 + yy // 16) % 2 == 0) & (yy >= horizon)
    img[tiles] = look["tile"]
    if cam == "cam1":  # windows on the wall
        for x in range(20, WIDTH, 80):
            img[25:75, x : x + 40] = (160, 150, 120)
    else:  # a bench and a planter
        img[60:90, 200:300] = (40, 60, 90)
        img[55:95, 20:60] = (30, 110, 40)
    img += rng.normal(0, 5, img.shape)
    return img


def _draw_person(img: np.ndarray, p: Person, box, t: float, walk: Walk) -> None:
    x1, y1, x2, y2 = box
    h = y2 - y1
    w = x2 - x1
    phase = np.sin(2 * np.pi * 1.6 * (t - walk.t0))
    # work on the box's neighbourhood only (absolute coordinates in yy, xx)
    ry0, ry1 = max(int(y1) - 2, 0), min(int(y2) + 3, HEIGHT)
    rx0, rx1 = max(int(x1) - 4, 0), min(int(x2) + 5, WIDTH)
    if ry1 <= ry0 or rx1 <= rx0:
        return
    img = img[ry0:ry1, rx0:rx1]
    yy, xx = np.mgrid[ry0:ry1, rx0:rx1]

    def rect(ax1, ay1, ax2, ay2):
        return (xx >= ax1) & (xx < ax2) & (yy >= ay1) & (yy < ay2)

    # legs (swing), trousers
    leg_top, leg_w = y1 + 0.52 * h, 0.16 * w
    for side, sgn in ((0.32, 1), (0.52, -1)):
        lx = x1 + side * w + sgn * phase * 0.08 * w
        img[rect(lx, leg_top, lx + leg_w, y2 - 0.04 * h)] = p.trousers
        img[rect(lx - 0.02 * w, y2 - 0.05 * h, lx + leg_w + 0.05 * w, y2)] = (25, 25, 25)  # shoes
    # torso with its pattern
    tx1, tx2, ty1, ty2 = x1 + 0.2 * w, x2 - 0.2 * w, y1 + 0.18 * h, y1 + 0.55 * h
    torso = rect(tx1, ty1, tx2, ty2)
    img[torso] = p.shirt
    period = max(3.0, 0.06 * h)
    if p.pattern == "hstripes":
        img[torso & (((yy - ty1) // period) % 2 == 1)] = p.accent
    elif p.pattern == "vstripes":
        img[torso & (((xx - tx1) // period) % 2 == 1)] = p.accent
    elif p.pattern == "checks":
        img[torso & ((((xx - tx1) // period) + ((yy - ty1) // period)) % 2 == 1)] = p.accent
    # arms (swing opposite to the legs), sleeves in the shirt colour
    for ax, sgn in ((x1 + 0.08 * w, -1), (x2 - 0.2 * w, 1)):
        ox = sgn * phase * 0.05 * w
        img[rect(ax + ox, ty1 + 0.02 * h, ax + ox + 0.12 * w, ty2 - 0.02 * h)] = p.shirt
        img[rect(ax + ox, ty2 - 0.02 * h, ax + ox + 0.12 * w, ty2 + 0.04 * h)] = p.skin
    # head and hair
    cx, cy, r = (x1 + x2) / 2, y1 + 0.1 * h, 0.085 * h
    img[(xx - cx) ** 2 + ((yy - cy) * 0.9) ** 2 <= r * r] = p.skin
    img[((xx - cx) ** 2 + ((yy - cy + 0.3 * r) * 0.9) ** 2 <= r * r) & (yy < cy - 0.2 * r)] = (30, 40, 50)


def _render_camera(cam: str, seed: int, video_path: Path | None) -> list[tuple[int, int, tuple, float]]:
    """Render one camera (when ``video_path``) and return its ground truth rows
    (frame 1-based, global id, (x, y, w, h) clipped, visibility)."""
    rng = np.random.default_rng([seed, CAMERAS.index(cam)])
    bg = _background(cam, rng)
    gain = np.asarray(CAMERA_LOOK[cam]["gain"], np.float32)
    people = {p.pid: p for p in PEOPLE}
    walks = [w for w in WALKS if w.camera == cam]
    writer = None
    if video_path is not None:
        import cv2

        writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter.fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
        if not writer.isOpened():
            from reidpipe.errors import OutputError

            raise OutputError(f"cannot write video {video_path} (OpenCV mp4v writer)")
    rows = []
    noise_rng = np.random.default_rng([seed, 100 + CAMERAS.index(cam)])
    for f in range(FRAMES):
        t = f / FPS
        present = sorted([(w, b) for w in walks if (b := _box_at(w, t, cam)) is not None], key=lambda wb: wb[0].foot_y)
        # visibility from a label raster painted far to near
        label = np.zeros((HEIGHT, WIDTH), np.int16)
        for w, b in present:
            ix1, iy1, ix2, iy2 = (round(v) for v in b)
            label[max(iy1, 0) : max(iy2, 0), max(ix1, 0) : max(ix2, 0)] = w.pid
        for w, b in present:
            x1, y1, x2, y2 = b
            area = (x2 - x1) * (y2 - y1)
            cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, WIDTH - 1.0), min(y2, HEIGHT - 1.0)
            if cx2 - cx1 < 2 or cy2 - cy1 < 2:
                continue
            ix1, iy1, ix2, iy2 = (round(v) for v in (x1, y1, x2, y2))
            visible = int((label[max(iy1, 0) : max(iy2, 0), max(ix1, 0) : max(ix2, 0)] == w.pid).sum())
            vis = visible / max(area, 1.0)
            if vis >= 0.15:
                rows.append((f + 1, w.pid, (cx1, cy1, cx2 - cx1, cy2 - cy1), round(min(vis, 1.0), 3)))
        if writer is not None:
            img = bg.copy()
            for w, b in present:
                _draw_person(img, people[w.pid], b, t, w)
            img = img * gain + noise_rng.normal(0, 3, img.shape)
            writer.write(np.clip(img, 0, 255).astype(np.uint8))
    if writer is not None:
        writer.release()
    return rows


def _gt_text(rows) -> str:
    return "".join(f"{f},{pid},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,1,{vis:.3f}\n" for f, pid, (x, y, w, h), vis in rows)


def _det_text(rows, cam: str, seed: int) -> str:
    rng = np.random.default_rng([seed, 200 + CAMERAS.index(cam)])
    out = []
    for f, _pid, (x, y, w, h), vis in rows:
        r = rng.random(6)
        if vis < 0.35 or r[0] < 0.03:
            continue
        j = rng.normal(0, 1.5, 4)
        conf = float(np.clip(0.55 + 0.4 * vis + 0.06 * (r[1] - 0.5), 0.3, 0.98))
        out.append((f, x + j[0], y + j[1], max(w + j[2], 4.0), max(h + j[3], 8.0), conf))
    # false positives: isolated low-confidence boxes on the background
    for _ in range(8):
        f = int(rng.integers(1, FRAMES + 1))
        x, y = float(rng.uniform(0, WIDTH - 40)), float(rng.uniform(20, HEIGHT - 100))
        out.append((f, x, y, 30.0, 70.0, float(rng.uniform(0.32, 0.45))))
    out.sort(key=lambda r: (r[0], r[1]))
    return "".join(f"{f},-1,{x:.2f},{y:.2f},{w:.2f},{h:.2f},{c:.3f},-1,-1,-1\n" for f, x, y, w, h, c in out)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _paths(out: Path) -> dict:
    return {
        "root": out,
        "cameras": list(CAMERAS),
        "videos": {c: out / f"{c}.mp4" for c in CAMERAS},
        "gt": {c: out / f"{c}_gt.txt" for c in CAMERAS},
        "det": {c: out / f"{c}_det.txt" for c in CAMERAS},
        "meta": out / "scene.json",
    }


def _cached(paths: dict, seed: int) -> bool:
    meta = paths["meta"]
    if not meta.is_file():
        return False
    try:
        data = json.loads(meta.read_text())
        if data.get("version") != VERSION or data.get("seed") != seed:
            return False
        for name, rec in data["files"].items():
            p = paths["root"] / name
            if not p.is_file() or p.stat().st_size != rec["size"] or _sha(p) != rec["sha256"]:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def make_scene(out_dir: str | Path, seed: int = 0) -> dict:
    """Render (or re-use) the scene in ``out_dir``. Returns ``{"root", "cameras", "videos": {cam:
    path}, "gt": {cam: path}, "det": {cam: path}, "meta"}``; ``seed`` drives the detection jitter,
    misses and false positives, the backgrounds' and frames' noise (the choreography is fixed)."""
    out = Path(out_dir)
    paths = _paths(out)
    if _cached(paths, seed):
        return paths
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from reidpipe.errors import OutputError

        raise OutputError(f"cannot create the scene folder {out}: {exc.strerror}") from None
    files = {}
    for cam in CAMERAS:
        tmp_video = out / f".{cam}.tmp.mp4"
        rows = _render_camera(cam, seed, tmp_video)
        tmp_video.replace(paths["videos"][cam])
        paths["gt"][cam].write_text(_gt_text(rows))
        paths["det"][cam].write_text(_det_text(rows, cam, seed))
        for key in ("videos", "gt", "det"):
            p = paths[key][cam]
            files[p.name] = {"size": p.stat().st_size, "sha256": _sha(p)}
    meta = {
        "schema": "reidpipe.demo_scene/1",
        "version": VERSION,
        "seed": seed,
        "width": WIDTH,
        "height": HEIGHT,
        "fps": FPS,
        "frames": FRAMES,
        "cameras": list(CAMERAS),
        "people": [{"id": p.pid, "cameras": sorted({w.camera for w in WALKS if w.pid == p.pid})} for p in PEOPLE],
        "files": files,
    }
    tmp = paths["meta"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(paths["meta"])
    return paths


def ground_truth_rows(camera: str, seed: int = 0) -> list:
    """The ground-truth rows of one camera without rendering (frame, id, (x, y, w, h), visibility)."""
    if camera not in CAMERAS:
        raise ValueError(f"unknown demo camera {camera!r}; cameras are {list(CAMERAS)}")
    return _render_camera(camera, seed, None)


__all__ = ["CAMERAS", "FPS", "FRAMES", "HEIGHT", "PEOPLE", "WALKS", "WIDTH", "ground_truth_rows", "make_scene"]
