"""A torch ``Dataset`` over ``ImageRecord`` lists, with optional π-VL parsing maps.

Items are dicts: ``images`` (3,H,W) float, ``labels`` (pid), ``cams``, ``index`` and, with a parsing
root, ``parsing`` (H,W) int64. An index may be an ``int`` or an ``(int, seed)`` pair from
``reidpipe.reid.sampler`` (the seed drives the augmentation of that sample).

Parsing maps: a folder of LIP-format label PNGs (one 8-bit label image per person image, values 0–19,
the 20 LIP classes), found at ``<parsing_root>/<image path relative to the dataset folder>`` with the
suffix ``.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from reidpipe.errors import DatasetError, MalformedInputError
from reidpipe.reid.datasets.base import ImageRecord
from reidpipe.reid.transforms import ReIDTransform

NUM_PARSING_CLASSES = 20  # LIP
IGNORE_LABEL = 255


def parsing_path(parsing_root: str | Path, record: ImageRecord) -> Path:
    return (Path(parsing_root) / record.rel).with_suffix(".png")


def check_parsing_maps(parsing_root: str | Path, records: list[ImageRecord]) -> None:
    root = Path(parsing_root)
    if not root.is_dir():
        raise DatasetError(f"parsing maps: folder {root} does not exist")
    for r in records:
        p = parsing_path(root, r)
        if not p.is_file():
            raise DatasetError(f"parsing maps: expected {p} (LIP label PNG) for image {r.path}")


def read_image(path: str) -> torch.Tensor:
    """RGB uint8 (3, h, w)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise MalformedInputError(f"cannot read image {path}: {exc}") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def read_parsing(path: Path) -> torch.Tensor:
    from PIL import Image

    try:
        with Image.open(path) as im:
            arr = np.asarray(im)
    except (OSError, ValueError) as exc:
        raise MalformedInputError(f"cannot read parsing map {path}: {exc}") from None
    if arr.ndim == 3:
        arr = arr[..., 0]
    bad = (arr >= NUM_PARSING_CLASSES) & (arr != IGNORE_LABEL)
    if bad.any():
        raise MalformedInputError(
            f"parsing map {path} has label {int(arr[bad].max())}; LIP labels are 0..19 (and {IGNORE_LABEL} = ignore)"
        )
    return torch.from_numpy(arr.astype(np.int64))


class ImageDataset(Dataset):
    def __init__(self, records: list[ImageRecord], transform: ReIDTransform, parsing_root: str | Path | None = None):
        self.records = list(records)
        self.transform = transform
        self.parsing_root = Path(parsing_root) if parsing_root else None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def pids(self) -> list[int]:
        return [r.pid for r in self.records]

    def __getitem__(self, item):
        idx, seed = item if isinstance(item, tuple) else (item, None)
        r = self.records[idx]
        img = read_image(r.path)
        par = read_parsing(parsing_path(self.parsing_root, r)) if self.parsing_root else None
        if par is not None and par.shape != img.shape[-2:]:
            par = torch.nn.functional.interpolate(par[None, None].float(), size=img.shape[-2:], mode="nearest")[
                0, 0
            ].long()
        img, par = self.transform(img, par, seed)
        out = {"images": img, "labels": r.pid, "cams": r.camid, "index": idx}
        if par is not None:
            out["parsing"] = par
        return out
