"""Readers for the standard person ReID datasets, each in its official on-disk layout.

``--data-root`` may be the dataset folder itself or a folder that contains it under its usual name
(e.g. ``/data/reid`` holding ``Market-1501-v15.09.15``).

Layouts (``<d>`` is the dataset folder):

- ``market1501``: ``<d>/bounding_box_train``, ``<d>/query``, ``<d>/bounding_box_test``; names
  ``PPPP_cCsS_FFFFFF_BB.jpg``. Identity ``-1`` (junk) images are dropped from every split; identity
  ``0000`` (distractors) stays in the gallery as negatives — the official protocol.
- ``dukemtmcreid`` and ``occluded_duke``: the same three folders, names ``PPPP_cC_fFFFFFFF.jpg``.
- ``msmt17``: ``MSMT17_V1`` (``train/``, ``test/``) or ``MSMT17_V2`` (``mask_train_v2/``,
  ``mask_test_v2/``) with ``list_train.txt``, ``list_val.txt``, ``list_query.txt``,
  ``list_gallery.txt`` (lines ``PPPP/PPPP_III_CC_....jpg LABEL``). Train = list_train + list_val
  (32,621 images, the figure the papers' tables print).
- ``cuhk03_labeled`` / ``cuhk03_detected`` (new 767/700 protocol), two accepted layouts:
  (a) ``cuhk03-np/{labeled,detected}/{bounding_box_train,query,bounding_box_test}`` with
  Market-style names (the CUHK03-NP release of Zhong et al.); (b) ``cuhk03/images_{labeled,detected}/``
  plus ``cuhk03_new_protocol_config_{labeled,detected}.mat`` (``filelist``, ``labels``, ``camId``,
  ``train_idx``, ``query_idx``, ``gallery_idx``; 1-based indices), as torchreid lays it out.
- ``partial_reid`` (test only): ``partial_body_images/`` (query) and ``whole_body_images/``
  (gallery); names ``PPP_NN.jpg``. Query images get camera 0, gallery camera 1.
- ``partial_ilids`` (test only): ``Probe/`` (query) and ``Gallery/``; names ``PPP.jpg``. Cameras as above.
- ``custom``: ``<d>/train``, ``<d>/query``, ``<d>/gallery`` (train may be absent for eval-only data,
  query/gallery may be absent for train-only data). Each holds either one folder per identity
  (folder name = identity; a ``_cN`` or ``cN`` in the file name gives the camera) or Market-style flat
  file names. Without camera information, query images are camera 0 and gallery images camera 1, so
  the same-camera exclusion removes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from reidpipe.errors import DatasetError
from reidpipe.reid.datasets.base import (
    ImageRecord,
    ReIDDataset,
    find_dataset_dir,
    list_images,
    relabel,
    require_dir,
)

_MARKET_RE = re.compile(r"^(-?\d+)_c(\d+)")
_CAM_RE = re.compile(r"(?:^|_)c(\d+)")


def _rel(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def _market_style_dir(
    folder: Path, base: Path, dataset: str, *, drop_junk: bool = True, camid_base: int = 1
) -> list[ImageRecord]:
    require_dir(folder, dataset)
    out = []
    for p in list_images(folder):
        m = _MARKET_RE.match(p.name)
        if m is None:
            raise DatasetError(f"{dataset}: file {p} does not follow the PPPP_cC... naming of this layout")
        pid, cam = int(m.group(1)), int(m.group(2))
        if pid == -1 and drop_junk:
            continue
        out.append(ImageRecord(str(p), pid, cam - camid_base, _rel(p, base)))
    return out


def _three_folder(root: Path, name: str, candidates: tuple[str, ...]) -> ReIDDataset:
    d = find_dataset_dir(root, candidates, "bounding_box_train", name)
    train = _market_style_dir(d / "bounding_box_train", d, name)
    query = _market_style_dir(d / "query", d, name)
    gallery = _market_style_dir(d / "bounding_box_test", d, name)
    # identity 0 (Market's distractors) never appears in a train set; drop it defensively
    train = relabel([r for r in train if r.pid > 0 or name != "market1501"])
    if not train:
        raise DatasetError(f"{name}: no training images in {d / 'bounding_box_train'}")
    if not query or not gallery:
        raise DatasetError(f"{name}: empty query ({d / 'query'}) or gallery ({d / 'bounding_box_test'})")
    return ReIDDataset(name, d, train, query, gallery)


def market1501(root: Path) -> ReIDDataset:
    return _three_folder(
        root, "market1501", ("Market-1501-v15.09.15", "Market-1501", "market1501", "market1501/Market-1501-v15.09.15")
    )


def dukemtmcreid(root: Path) -> ReIDDataset:
    return _three_folder(
        root,
        "dukemtmcreid",
        ("DukeMTMC-reID", "dukemtmc-reid/DukeMTMC-reID", "dukemtmcreid", "DukeMTMC-reID/DukeMTMC-reID"),
    )


def occluded_duke(root: Path) -> ReIDDataset:
    return _three_folder(root, "occluded_duke", ("Occluded_Duke", "Occluded-Duke", "occluded_duke", "occluded-duke"))


# --------------------------------------------------------------------------------------------- MSMT17
def _msmt_list(list_path: Path, img_dir: Path, base: Path, dataset: str) -> list[ImageRecord]:
    if not list_path.is_file():
        raise DatasetError(f"{dataset}: expected list file {list_path}")
    out = []
    for n, line in enumerate(list_path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError(f"{dataset}: {list_path}:{n}: expected '<relative path> <label>', got {line!r}")
        rel, label = parts
        fields = Path(rel).name.split("_")
        try:
            pid, camid = int(label), int(fields[2]) - 1
        except (ValueError, IndexError):
            raise DatasetError(f"{dataset}: {list_path}:{n}: cannot read label/camera from {line!r}") from None
        p = img_dir / rel
        out.append(ImageRecord(str(p), pid, camid, _rel(p, base)))
    return out


def msmt17(root: Path) -> ReIDDataset:
    name = "msmt17"
    d = find_dataset_dir(
        root,
        ("MSMT17_V1", "MSMT17_V2", "MSMT17", "msmt17/MSMT17_V1", "msmt17/MSMT17_V2", "msmt17"),
        "list_train.txt",
        name,
    )
    for train_dir, test_dir in (("train", "test"), ("mask_train_v2", "mask_test_v2")):
        if (d / train_dir).is_dir() and (d / test_dir).is_dir():
            break
    else:
        raise DatasetError(
            f"{name}: expected image folders {d / 'train'} and {d / 'test'} (v1) or "
            f"{d / 'mask_train_v2'} and {d / 'mask_test_v2'} (v2)"
        )
    train = _msmt_list(d / "list_train.txt", d / train_dir, d, name)
    if (d / "list_val.txt").is_file():
        train += _msmt_list(d / "list_val.txt", d / train_dir, d, name)
    query = _msmt_list(d / "list_query.txt", d / test_dir, d, name)
    gallery = _msmt_list(d / "list_gallery.txt", d / test_dir, d, name)
    missing = next((r.path for r in train[:1] + query[:1] + gallery[:1] if not Path(r.path).is_file()), None)
    if missing:
        raise DatasetError(f"{name}: image {missing} listed in the list files does not exist")
    return ReIDDataset(name, d, relabel(train), query, gallery)


# --------------------------------------------------------------------------------------------- CUHK03
def _cuhk03(root: Path, subset: str) -> ReIDDataset:
    name = f"cuhk03_{subset}"
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{name}: data root {root} does not exist")
    # (a) CUHK03-NP folders
    for cand in (
        root / subset,
        root / "cuhk03-np" / subset,
        root / "cuhk03_np" / subset,
        root / "CUHK03-NP" / subset,
        root / "cuhk03" / "cuhk03-np" / subset,
    ):
        if (cand / "bounding_box_train").is_dir():
            ds = _three_folder(cand, name, ())
            ds.root = cand
            return ds
    # (b) images_<subset> + new-protocol .mat
    for cand in (root, root / "cuhk03", root / "cuhk03_release"):
        mat = cand / f"cuhk03_new_protocol_config_{subset}.mat"
        imgs = cand / f"images_{subset}"
        if mat.is_file() and imgs.is_dir():
            return _cuhk03_mat(name, cand, mat, imgs)
    raise DatasetError(
        f"{name}: expected {root / 'cuhk03-np' / subset / 'bounding_box_train'} (CUHK03-NP layout) or "
        f"{root / 'cuhk03' / f'images_{subset}'} with {root / 'cuhk03' / f'cuhk03_new_protocol_config_{subset}.mat'}"
    )


def _cuhk03_mat(name: str, base: Path, mat: Path, imgs: Path) -> ReIDDataset:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        split = loadmat(str(mat))
        filelist = [str(f[0]) if not isinstance(f, str) else f for f in split["filelist"].flatten()]
        labels = split["labels"].flatten().astype(int)
        cams = split["camId"].flatten().astype(int)
        idx = {k: split[f"{k}_idx"].flatten().astype(int) - 1 for k in ("train", "query", "gallery")}
    except (MatReadError, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DatasetError(f"{name}: cannot read the split file {mat}: {exc}") from None

    def build(ids) -> list[ImageRecord]:
        out = []
        for i in ids:
            p = imgs / filelist[i]
            out.append(ImageRecord(str(p), int(labels[i]), int(cams[i]) - 1, _rel(p, base)))
        return out

    train, query, gallery = build(idx["train"]), build(idx["query"]), build(idx["gallery"])
    missing = next((r.path for r in train[:1] + query[:1] if not Path(r.path).is_file()), None)
    if missing:
        raise DatasetError(f"{name}: image {missing} named in {mat} does not exist")
    return ReIDDataset(name, base, relabel(train), query, gallery)


def cuhk03_labeled(root: Path) -> ReIDDataset:
    return _cuhk03(root, "labeled")


def cuhk03_detected(root: Path) -> ReIDDataset:
    return _cuhk03(root, "detected")


# ----------------------------------------------------------------------------------------- partial sets
def _leading_int(p: Path, dataset: str) -> int:
    m = re.match(r"^(\d+)", p.stem)
    if m is None:
        raise DatasetError(f"{dataset}: file {p} does not start with its identity number")
    return int(m.group(1))


def _test_only(
    root: Path, name: str, candidates: tuple[str, ...], qdirs: tuple[str, ...], gdirs: tuple[str, ...]
) -> ReIDDataset:
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{name}: data root {root} does not exist")
    for d in (root, *(root / c for c in candidates)):
        q = next((d / x for x in qdirs if (d / x).is_dir()), None)
        g = next((d / x for x in gdirs if (d / x).is_dir()), None)
        if q is not None and g is not None:
            query = [ImageRecord(str(p), _leading_int(p, name), 0, _rel(p, d)) for p in list_images(q)]
            gallery = [ImageRecord(str(p), _leading_int(p, name), 1, _rel(p, d)) for p in list_images(g)]
            if not query or not gallery:
                raise DatasetError(f"{name}: no images in {q} or {g}")
            return ReIDDataset(name, d, [], query, gallery, notes="test-only dataset (no training split)")
    raise DatasetError(
        f"{name}: expected folders {qdirs[0]}/ (query) and {gdirs[0]}/ (gallery) under {root} "
        f"or under {', '.join(str(root / c) for c in candidates)}"
    )


def partial_reid(root: Path) -> ReIDDataset:
    return _test_only(
        root,
        "partial_reid",
        ("Partial-REID_Dataset", "Partial_REID", "PartialREID", "partial_reid"),
        ("partial_body_images",),
        ("whole_body_images",),
    )


def partial_ilids(root: Path) -> ReIDDataset:
    return _test_only(
        root,
        "partial_ilids",
        ("Partial_iLIDS", "PartialiLIDS", "Partial-iLIDS", "partial_ilids"),
        ("Probe", "partial_body_images"),
        ("Gallery", "whole_body_images"),
    )


# ------------------------------------------------------------------------------------------------ custom
def _custom_split(folder: Path, base: Path, default_cam: int, ids: dict[str, int]) -> list[ImageRecord]:
    """``ids`` maps non-numeric identity folder names to numbers, shared by the splits."""
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    out = []
    if subdirs:
        for sd in subdirs:
            pid = int(sd.name) if sd.name.lstrip("-").isdigit() else ids.setdefault(sd.name, len(ids) + 1)
            for p in sorted(
                q for q in sd.rglob("*") if q.is_file() and q.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp")
            ):
                m = _CAM_RE.search(p.stem)
                cam = int(m.group(1)) - 1 if m else default_cam
                out.append(ImageRecord(str(p), pid, cam, _rel(p, base)))
        return out
    for p in list_images(folder):
        m = _MARKET_RE.match(p.name)
        if m is None:
            raise DatasetError(f"custom: {p} is neither inside a per-identity folder nor named PPPP_cC...")
        pid = int(m.group(1))
        if pid == -1:
            continue
        out.append(ImageRecord(str(p), pid, int(m.group(2)) - 1, _rel(p, base)))
    return out


def custom(root: Path) -> ReIDDataset:
    d = Path(root).expanduser()
    if not d.is_dir():
        raise DatasetError(f"custom: data root {d} does not exist")
    parts = {s: d / s for s in ("train", "query", "gallery") if (d / s).is_dir()}
    if "train" not in parts and not ("query" in parts and "gallery" in parts):
        raise DatasetError(
            f"custom: expected {d / 'train'} and/or {d / 'query'} + {d / 'gallery'} "
            "(each one folder per identity, or Market-style file names)"
        )
    ids: dict[str, int] = {}
    train = _custom_split(parts["train"], d, 0, ids) if "train" in parts else []
    query = _custom_split(parts["query"], d, 0, ids) if "query" in parts else []
    gallery = _custom_split(parts["gallery"], d, 1, ids) if "gallery" in parts else []
    if not (train or query):
        raise DatasetError(f"custom: no images under {d}")
    return ReIDDataset("custom", d, relabel(train), query, gallery)


READERS: dict[str, Callable[[Path], ReIDDataset]] = {
    "market1501": market1501,
    "dukemtmcreid": dukemtmcreid,
    "msmt17": msmt17,
    "cuhk03_labeled": cuhk03_labeled,
    "cuhk03_detected": cuhk03_detected,
    "occluded_duke": occluded_duke,
    "partial_reid": partial_reid,
    "partial_ilids": partial_ilids,
    "custom": custom,
}
ALIASES = {
    "market": "market1501",
    "market-1501": "market1501",
    "duke": "dukemtmcreid",
    "dukemtmc": "dukemtmcreid",
    "dukemtmc-reid": "dukemtmcreid",
    "cuhk03": "cuhk03_labeled",
    "occluded-duke": "occluded_duke",
    "partial-reid": "partial_reid",
    "partial-ilids": "partial_ilids",
}


def dataset_names() -> list[str]:
    return sorted(READERS)


def build_dataset(name: str, root: str | Path) -> ReIDDataset:
    """Read dataset ``name`` under ``root``; DatasetError naming the expected layout on a mismatch."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in READERS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(dataset_names())}")
    return READERS[key](Path(root))
