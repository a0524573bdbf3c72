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
    root = Path(root)
    test_ids = ids if test_ids is None else test_ids
    train_p = list(range(1, ids + 1))
    test_p = list(range(ids + 1, ids + test_ids + 1))
    pr = Path(parsing_root) if parsing_root else None

    def market_like(folder: str, name_fmt) -> Path:
        d = root / folder
        w = _Writer(d, pr, size)
        for pid in train_p:
            for c in range(1, cams + 1):
                for i in range(per_cam):
                    w.put(f"bounding_box_train/{name_fmt(pid, c, i)}", pid, c, i)
        for pid in test_p:
            for c in range(1, cams + 1):
                for i in range(per_cam):
                    sub = "query" if (c == 1 and i == 0) else "bounding_box_test"
                    w.put(f"{sub}/{name_fmt(pid, c, i)}", pid, c, i + 10)
        for j in range(distractors):
            w.put(f"bounding_box_test/{name_fmt(0, 1 + j % cams, j)}", 0, 1 + j % cams, 100 + j)
        for j in range(junk):
            w.put(f"bounding_box_test/{name_fmt(-1, 1 + j % cams, j)}", 0, 1 + j % cams, 200 + j)
        return d

    def mk(pid, c, i):  # Market: 0002_c1s1_000451_03.jpg
        return f"{pid:04d}_c{c}s1_{i * 25 + 1:06d}_0{i % 9 + 1}.jpg" if pid >= 0 else f"-1_c{c}s1_{i:06d}_00.jpg"

    def dk(pid, c, i):  # Duke: 0001_c2_f0046182.jpg
        return f"{pid:04d}_c{c}_f{i * 97 + 46182:07d}.jpg" if pid >= 0 else f"-1_c{c}_f{i:07d}.jpg"

    if layout == "market1501":
        return market_like("Market-1501-v15.09.15", mk)
    if layout == "dukemtmcreid":
        return market_like("DukeMTMC-reID", dk)
    if layout == "occluded_duke":
        return market_like("Occluded_Duke", dk)
    if layout == "cuhk03_np":
        for sub in ("labeled", "detected"):
            market_like(f"cuhk03-np/{sub}", lambda p, c, i: f"{p:04d}_c{c}_{i + 1}.png")
        return root / "cuhk03-np"
    if layout == "msmt17":
        d = root / ("MSMT17_V1" if version == 1 else "MSMT17_V2")
        tr, te = ("train", "test") if version == 1 else ("mask_train_v2", "mask_test_v2")
        w = _Writer(d, pr, size)
        lists: dict[str, list] = {"train": [], "val": [], "query": [], "gallery": []}
        for label, pid in enumerate(train_p):
            for c in range(1, cams + 1):
                for i in range(per_cam):
                    rel = f"{pid:04d}/{pid:04d}_{i:03d}_{c:02d}_0303morning_{i:04d}_0.jpg"
                    w.put(f"{tr}/{rel}", pid, c, i)
                    lists["val" if (c == cams and i == per_cam - 1) else "train"].append(f"{rel} {label}")
        for label, pid in enumerate(test_p):
            for c in range(1, cams + 1):
                for i in range(per_cam):
                    rel = f"{pid:04d}/{pid:04d}_{i:03d}_{c:02d}_0303noon_{i:04d}_0.jpg"
                    w.put(f"{te}/{rel}", pid, c, i + 10)
                    lists["query" if (c == 1 and i == 0) else "gallery"].append(f"{rel} {label}")
        for k, v in lists.items():
            (d / f"list_{k}.txt").write_text("\n".join(v) + "\n")
        return d
    if layout == "cuhk03_mat":
        from scipy.io import savemat

        d = root / "cuhk03"
        for sub in ("labeled", "detected"):
            w = _Writer(d / f"images_{sub}", pr, size)
            files, labels, camids, train_idx, query_idx, gallery_idx = [], [], [], [], [], []
            for pid in train_p + test_p:
                for c in (1, 2):
                    for i in range(per_cam):
                        name = f"1_{pid:03d}_{c}_{i + 1:02d}.png"
                        w.put(name, pid, c, i)
                        files.append(name)
                        labels.append(pid)
                        camids.append(c)
                        n = len(files)  # 1-based index
                        if pid in train_p:
                            train_idx.append(n)
                        elif c == 1 and i == 0:
                            query_idx.append(n)
                        else:
                            gallery_idx.append(n)
            cell = np.empty((len(files), 1), dtype=object)
            for j, f in enumerate(files):
                cell[j, 0] = np.array([f])
            savemat(
                str(d / f"cuhk03_new_protocol_config_{sub}.mat"),
                {
                    "filelist": cell,
                    "labels": np.array(labels, float)[:, None],
                    "camId": np.array(camids, float)[:, None],
                    "train_idx": np.array(train_idx, float)[:, None],
                    "query_idx": np.array(query_idx, float)[:, None],
                    "gallery_idx": np.array(gallery_idx, float)[:, None],
                },
            )
        return d
    if layout == "partial_reid":
        d = root / "Partial-REID_Dataset"
        w = _Writer(d, pr, size)
        for pid in test_p:
            for i in range(per_cam):
                w.put(f"partial_body_images/{pid:03d}_{i + 1:02d}.jpg", pid, 1, i)
                w.put(f"whole_body_images/{pid:03d}_{i + 1:02d}.jpg", pid, 2, i + 10)
        return d
    if layout == "partial_ilids":
        d = root / "Partial_iLIDS"
        w = _Writer(d, pr, size)
        for pid in test_p:
            w.put(f"Probe/{pid:03d}.jpg", pid, 1, 0)
            w.put(f"Gallery/{pid:03d}.jpg", pid, 2, 10)
        return d
    if layout in ("custom_folders", "custom_market"):
        d = root / "custom"
        w = _Writer(d, pr, size)
        for split, pids in (("train", train_p), ("query", test_p), ("gallery", test_p)):
            for pid in pids:
                for c in range(1, cams + 1):
                    for i in range(per_cam):
                        if split == "query" and not (c == 1 and i == 0):
                            continue
                        if split == "gallery" and c == 1 and i == 0:
                            continue
                        if layout == "custom_folders":
                            w.put(f"{split}/person_{pid:03d}/img_c{c}_{i}.jpg", pid, c, i)
                        else:
                            w.put(f"{split}/{mk(pid, c, i)}", pid, c, i)
        return d
    raise ValueError(f"unknown synthetic layout {layout!r}")
