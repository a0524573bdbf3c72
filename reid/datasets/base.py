"""Records shared by every dataset reader.

A reader turns a dataset root in its official on-disk layout into three lists of ``ImageRecord``
(train / query / gallery). Training labels are contiguous (0..num_train_ids-1, in sorted order of
the original identity); query and gallery keep the original identity numbers so that evaluation
compares them directly. Camera ids are 0-based.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reidpipe.errors import DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class ImageRecord:
    """One image: absolute ``path``, identity ``pid``, 0-based camera ``camid``, and ``rel``, the path
    relative to the dataset folder (used to find its parsing map)."""

    path: str
    pid: int
    camid: int
    rel: str = ""


@dataclass
class ReIDDataset:
    name: str
    root: Path
    train: list[ImageRecord] = field(default_factory=list)
    query: list[ImageRecord] = field(default_factory=list)
    gallery: list[ImageRecord] = field(default_factory=list)
    junk_pids: tuple[int, ...] = (-1,)
    notes: str = ""

    @property
    def num_train_pids(self) -> int:
        return len({r.pid for r in self.train})

    @property
    def num_train_cams(self) -> int:
        return len({r.camid for r in self.train})

    def stats(self) -> dict[str, dict[str, int]]:
        out = {}
        for split in ("train", "query", "gallery"):
            recs = getattr(self, split)
            out[split] = {
                "ids": len({r.pid for r in recs}),
                "images": len(recs),
                "cameras": len({r.camid for r in recs}),
            }
        return out

    def table(self) -> str:
        """The counts as the papers' dataset tables print them."""
        lines = [
            f"Dataset {self.name} ({self.root})",
            "  ----------------------------------------",
            "  subset   | # ids | # images | # cameras",
            "  ----------------------------------------",
        ]
        for split, s in self.stats().items():
            lines.append(f"  {split:<8} | {s['ids']:5d} | {s['images']:8d} | {s['cameras']:9d}")
        lines.append("  ----------------------------------------")
        return "\n".join(lines)


def relabel(records: list[ImageRecord]) -> list[ImageRecord]:
    """Map the identities of ``records`` to 0..n-1 (sorted by original id)."""
    pids = sorted({r.pid for r in records})
    mapping = {p: i for i, p in enumerate(pids)}
    return [ImageRecord(r.path, mapping[r.pid], r.camid, r.rel) for r in records]


def choose_ids(records: list[ImageRecord], n: int | None, seed: int) -> list[ImageRecord]:
    """The records of a seeded random ``n`` of the identities in ``records`` (all of them when ``n`` is
    None or not smaller than their number), relabelled 0..n-1."""
    pids = sorted({r.pid for r in records})
    if n is not None and n < len(pids):
        import numpy as np

        keep = set(np.random.default_rng(seed).choice(pids, size=n, replace=False).tolist())
        records = [r for r in records if r.pid in keep]
    return relabel(records)


def with_extra_train(dataset: ReIDDataset, extra: list[ImageRecord], name: str) -> ReIDDataset:
    """``dataset`` with ``extra`` training records (identities 0..m-1) added as other people seen by other
    cameras: their identities and cameras are numbered after the dataset's own."""
    pid0 = max((r.pid for r in dataset.train), default=-1) + 1
    cam0 = max((r.camid for r in dataset.train), default=-1) + 1
    moved = [ImageRecord(r.path, r.pid + pid0, r.camid + cam0, r.rel) for r in extra]
    notes = "; ".join(x for x in (dataset.notes, f"training split + {name}") if x)
    return ReIDDataset(
        dataset.name, dataset.root, dataset.train + moved, dataset.query, dataset.gallery, dataset.junk_pids, notes
    )


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what}: expected folder {path} does not exist")
    return path


def find_dataset_dir(root: Path, candidates: tuple[str, ...], marker: str, dataset: str) -> Path:
    """Locate the dataset folder: ``root`` itself when it holds ``marker``, else ``root/<candidate>``.

    Raises DatasetError naming every place looked at."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"{dataset}: data root {root} does not exist")
    tried = [root] + [root / c for c in candidates]
    for d in tried:
        if (d / marker).exists():
            return d
    where = ", ".join(str(d / marker) for d in tried)
    raise DatasetError(f"{dataset}: expected {marker!r} in the dataset folder; looked for {where}")
