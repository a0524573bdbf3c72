"""Tiny synthetic ReID datasets written in the official on-disk layouts.

For smoke tests of an installation, the test-suite and demos: every identity is a figure with its own
shirt and trousers colours on a camera-dependent background, with per-image jitter, so a model can
learn something in a few iterations. Optional LIP-format parsing maps (0 background, 2 hair,
5 upper clothes, 9 pants, 13 face) are written next to the images' relative paths.

``write_dataset(layout, root, ...)`` returns the dataset folder; layouts: market1501, dukemtmcreid,
occluded_duke, msmt17 (``version=1|2``), cuhk03_np, cuhk03_mat, partial_reid, partial_ilids,
custom_folders, custom_market.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LIP_BACKGROUND, LIP_HAIR, LIP_UPPER, LIP_PANTS, LIP_FACE = 0, 2, 5, 9, 13


def person_image(pid: int, cam: int, idx: int, size: tuple[int, int] = (64, 32)) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 (H, W, 3), LIP label map (H, W) uint8) for identity ``pid`` seen by camera ``cam``."""
    H, W = size
    rng = np.random.default_rng(pid * 7919 + cam * 104729 + idx * 15485863 % 2**31)
    id_rng = np.random.default_rng(pid + 12345)
    shirt, pants = id_rng.integers(30, 226, 3), id_rng.integers(30, 226, 3)
    bg = np.array([40 + 30 * (cam % 5), 90, 160 - 20 * (cam % 4)])
    img = np.empty((H, W, 3), np.float32)
    img[:] = bg
    lab = np.zeros((H, W), np.uint8)
    dx = int(rng.integers(-W // 10, W // 10 + 1))
    x0, x1 = max(0, W // 4 + dx), min(W, 3 * W // 4 + dx)
    h0, h1, h2, h3 = int(0.05 * H), int(0.2 * H), int(0.55 * H), int(0.95 * H)
    img[h0:h1, x0 + 2 : x1 - 2] = (220, 180, 150)
    lab[h0:h1, x0 + 2 : x1 - 2] = LIP_FACE
    img[h0 : h0 + max(1, H // 32), x0 + 2 : x1 - 2] = (30, 20, 10)
    lab[h0 : h0 + max(1, H // 32), x0 + 2 : x1 - 2] = LIP_HAIR
    img[h1:h2, x0:x1] = shirt
    lab[h1:h2, x0:x1] = LIP_UPPER
    img[h2:h3, x0 + 1 : x1 - 1] = pants
    lab[h2:h3, x0 + 1 : x1 - 1] = LIP_PANTS
    lit = img * (0.8 + 0.05 * cam) + rng.normal(0, 8, img.shape)
    return np.clip(lit, 0, 255).astype(np.uint8), lab


def _save(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


def _save_label(path: Path, lab: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(lab, mode="L").save(path.with_suffix(".png"))


class _Writer:
    def __init__(self, base: Path, parsing_root: Path | None, size: tuple[int, int]):
        self.base, self.parsing_root, self.size = base, parsing_root, size

    def put(self, rel: str, pid: int, cam: int, idx: int) -> None:
        rgb, lab = person_image(max(pid, 0), cam, idx, self.size)
        _save(self.base / rel, rgb)
        if self.parsing_root is not None:
            _save_label(self.parsing_root / rel, lab)


@dataclass(frozen=True)
class _Spec:
    """What every layout writer needs: where, which identities, how many images of each."""

    root: Path
    train_p: list[int]
    test_p: list[int]
    per_cam: int
    cams: int
    size: tuple[int, int]
    parsing_root: Path | None
    version: int
    distractors: int
    junk: int

    def writer(self, base: Path) -> _Writer:
        return _Writer(base, self.parsing_root, self.size)

    def shots(self, pids: list[int], cams: int | None = None) -> Iterator[tuple[int, int, int]]:
        """``(pid, camera, index)`` of every image of ``pids``: ``per_cam`` per camera 1..cams."""
        for pid in pids:
            for c in range(1, (self.cams if cams is None else cams) + 1):
                for i in range(self.per_cam):
                    yield pid, c, i


NameFormat = Callable[[int, int, int], str]


def _is_query(c: int, i: int) -> bool:
    """A test identity's first image in camera 1 is its query; the rest are gallery."""
    return c == 1 and i == 0


def _market_name(pid: int, c: int, i: int) -> str:  # Market: 0002_c1s1_000451_03.jpg
    return f"{pid:04d}_c{c}s1_{i * 25 + 1:06d}_0{i % 9 + 1}.jpg" if pid >= 0 else f"-1_c{c}s1_{i:06d}_00.jpg"


def _duke_name(pid: int, c: int, i: int) -> str:  # Duke: 0001_c2_f0046182.jpg
    return f"{pid:04d}_c{c}_f{i * 97 + 46182:07d}.jpg" if pid >= 0 else f"-1_c{c}_f{i:07d}.jpg"


def _cuhk03_np_name(pid: int, c: int, i: int) -> str:
    return f"{pid:04d}_c{c}_{i + 1}.png"


def _market_like(s: _Spec, folder: str, name: NameFormat) -> Path:
    """bounding_box_train / query / bounding_box_test, identity and camera in the file name."""
    d = s.root / folder
    w = s.writer(d)
    for pid, c, i in s.shots(s.train_p):
        w.put(f"bounding_box_train/{name(pid, c, i)}", pid, c, i)
    for pid, c, i in s.shots(s.test_p):
        sub = "query" if _is_query(c, i) else "bounding_box_test"
        w.put(f"{sub}/{name(pid, c, i)}", pid, c, i + 10)
    for j in range(s.distractors):
        w.put(f"bounding_box_test/{name(0, 1 + j % s.cams, j)}", 0, 1 + j % s.cams, 100 + j)
    for j in range(s.junk):
        w.put(f"bounding_box_test/{name(-1, 1 + j % s.cams, j)}", 0, 1 + j % s.cams, 200 + j)
    return d


def _cuhk03_np(s: _Spec) -> Path:
    for sub in ("labeled", "detected"):
        _market_like(s, f"cuhk03-np/{sub}", _cuhk03_np_name)
    return s.root / "cuhk03-np"


def _msmt17(s: _Spec) -> Path:
    """Images in per-identity folders, splits in list_{train,val,query,gallery}.txt."""
    d = s.root / ("MSMT17_V1" if s.version == 1 else "MSMT17_V2")
    tr, te = ("train", "test") if s.version == 1 else ("mask_train_v2", "mask_test_v2")
    w = s.writer(d)
    lists: dict[str, list] = {"train": [], "val": [], "query": [], "gallery": []}
    labels = {pid: label for label, pid in enumerate(s.train_p)}
    for pid, c, i in s.shots(s.train_p):
        rel = f"{pid:04d}/{pid:04d}_{i:03d}_{c:02d}_0303morning_{i:04d}_0.jpg"
        w.put(f"{tr}/{rel}", pid, c, i)
        lists["val" if (c == s.cams and i == s.per_cam - 1) else "train"].append(f"{rel} {labels[pid]}")
    labels = {pid: label for label, pid in enumerate(s.test_p)}
    for pid, c, i in s.shots(s.test_p):
        rel = f"{pid:04d}/{pid:04d}_{i:03d}_{c:02d}_0303noon_{i:04d}_0.jpg"
        w.put(f"{te}/{rel}", pid, c, i + 10)
        lists["query" if _is_query(c, i) else "gallery"].append(f"{rel} {labels[pid]}")
    for k, v in lists.items():
        (d / f"list_{k}.txt").write_text("\n".join(v) + "\n")
    return d


def _cuhk03_mat(s: _Spec) -> Path:
    """images_{labeled,detected}/ and the new protocol's .mat split files (1-based indices)."""
    d = s.root / "cuhk03"
    for sub in ("labeled", "detected"):
        w = s.writer(d / f"images_{sub}")
        files: list[str] = []
        columns: dict[str, list[int]] = {k: [] for k in ("labels", "camId", "train_idx", "query_idx", "gallery_idx")}
        for pid, c, i in s.shots(s.train_p + s.test_p, cams=2):
            name = f"1_{pid:03d}_{c}_{i + 1:02d}.png"
            w.put(name, pid, c, i)
            files.append(name)
            columns["labels"].append(pid)
            columns["camId"].append(c)
            split = "train_idx" if pid in s.train_p else ("query_idx" if _is_query(c, i) else "gallery_idx")
            columns[split].append(len(files))
        _save_cuhk03_split(d / f"cuhk03_new_protocol_config_{sub}.mat", files, columns)
    return d


def _save_cuhk03_split(path: Path, files: list[str], columns: dict[str, list[int]]) -> None:
    from scipy.io import savemat

    cell = np.empty((len(files), 1), dtype=object)
    for j, f in enumerate(files):
        cell[j, 0] = np.array([f])
    savemat(str(path), {"filelist": cell, **{k: np.array(v, float)[:, None] for k, v in columns.items()}})


def _partial_reid(s: _Spec) -> Path:
    d = s.root / "Partial-REID_Dataset"
    w = s.writer(d)
    for pid in s.test_p:
        for i in range(s.per_cam):
            w.put(f"partial_body_images/{pid:03d}_{i + 1:02d}.jpg", pid, 1, i)
            w.put(f"whole_body_images/{pid:03d}_{i + 1:02d}.jpg", pid, 2, i + 10)
    return d


def _partial_ilids(s: _Spec) -> Path:
    d = s.root / "Partial_iLIDS"
    w = s.writer(d)
    for pid in s.test_p:
        w.put(f"Probe/{pid:03d}.jpg", pid, 1, 0)
        w.put(f"Gallery/{pid:03d}.jpg", pid, 2, 10)
    return d


def _custom(s: _Spec, folders: bool) -> Path:
    """train/query/gallery; an identity per folder (``folders``) or Market file names."""
    d = s.root / "custom"
    w = s.writer(d)
    for split, pids in (("train", s.train_p), ("query", s.test_p), ("gallery", s.test_p)):
        for pid, c, i in s.shots(pids):
            if split != "train" and _is_query(c, i) != (split == "query"):
                continue
            rel = f"person_{pid:03d}/img_c{c}_{i}.jpg" if folders else _market_name(pid, c, i)
            w.put(f"{split}/{rel}", pid, c, i)
    return d


_LAYOUTS: dict[str, Callable[[_Spec], Path]] = {
    "market1501": lambda s: _market_like(s, "Market-1501-v15.09.15", _market_name),
    "dukemtmcreid": lambda s: _market_like(s, "DukeMTMC-reID", _duke_name),
    "occluded_duke": lambda s: _market_like(s, "Occluded_Duke", _duke_name),
    "cuhk03_np": _cuhk03_np,
    "msmt17": _msmt17,
    "cuhk03_mat": _cuhk03_mat,
    "partial_reid": _partial_reid,
    "partial_ilids": _partial_ilids,
    "custom_folders": lambda s: _custom(s, folders=True),
    "custom_market": lambda s: _custom(s, folders=False),
}


def write_dataset(
    layout: str,
    root: str | Path,
    *,
    ids: int = 6,
    per_cam: int = 2,
    cams: int = 2,
    test_ids: int | None = None,
    size: tuple[int, int] = (64, 32),
    parsing_root: str | Path | None = None,
    version: int = 1,
    distractors: int = 0,
    junk: int = 0,
) -> Path:
    """Write a tiny dataset; train identities 1..ids, test identities ids+1..ids+test_ids, each seen
    ``per_cam`` times by each of ``cams`` cameras. Returns the dataset folder."""
    if layout not in _LAYOUTS:
        raise ValueError(f"unknown synthetic layout {layout!r}")
    test_ids = ids if test_ids is None else test_ids
    spec = _Spec(
        root=Path(root),
        train_p=list(range(1, ids + 1)),
        test_p=list(range(ids + 1, ids + test_ids + 1)),
        per_cam=per_cam,
        cams=cams,
        size=size,
        parsing_root=Path(parsing_root) if parsing_root else None,
        version=version,
        distractors=distractors,
        junk=junk,
    )
    return _LAYOUTS[layout](spec)
