"""The mined set on disk, in the Market-1501 layout, so that a person can look at it, clean it and
train on it (``reidpipe train --dataset market1501 --data-root DIR/dataset``) and so that the training
engine reads it with the reader every Market-style data set goes through.

- ``bounding_box_train/``: the pseudo-identities trained on;
- ``query/`` + ``bounding_box_test/``: pseudo-identities held out (people seen by two or more
  cameras: the Market protocol never matches a query against its own camera), one crop per camera
  as a query, the others in the gallery. Before/after figures on them say what adaptation did to
  people it did not train on, judged by the runs' own links (not by ground truth).

Names are ``PPPP_cCsS_FFFFFF_NN.jpg``: pseudo-identity ``P`` (from 1), camera ``C`` (cameras numbered
by name across the runs, from 1), run ``S`` (the order of the RUN_DIR arguments), frame ``F`` of
that camera's source, ``NN`` 00. ``crops.csv`` says where each file was cut (run folder, camera,
track, frame, box), so a doubtful crop can be traced back to its run. The set is written to a temporary folder and renamed into place,
so an interrupted write leaves no half set.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reidpipe.adapt.crops import PlannedCrop
from reidpipe.adapt.mine import PseudoIdentity
from reidpipe.errors import DatasetError, OutputError

MIN_CROPS = 4  # a pseudo-identity with fewer usable crops teaches nothing (and fills K by repeats)
SPLITS = ("bounding_box_train", "query", "bounding_box_test")
JPEG_QUALITY = 95


@dataclass
class Person:
    """A pseudo-identity with its number and crops, and where it goes (``train`` or ``held_out``)."""

    pid: int
    pseudo: PseudoIdentity
    crops: list[PlannedCrop]
    held_out: bool = False

    @property
    def cameras(self) -> list[str]:
        return sorted({c.camera for c in self.crops})


@dataclass
class Layout:
    people: list[Person]
    cameras: dict[str, int]  # camera name -> C of the file names
    files: dict[str, list[tuple[str, PlannedCrop]]] = field(default_factory=dict)  # split -> (name, crop)


def build_layout(identities: list[tuple[PseudoIdentity, list[PlannedCrop]]], holdout: float, seed: int) -> Layout:
    """Number the pseudo-identities with enough crops, choose the held-out ones, name every file."""
    people = [Person(0, p, crops) for p, crops in identities if len(crops) >= MIN_CROPS]
    for k, person in enumerate(people, start=1):
        person.pid = k
    _hold_out(people, holdout, seed)
    cameras: dict[str, int] = {}
    for person in people:
        for c in person.crops:
            cameras.setdefault(c.camera, len(cameras) + 1)
    layout = Layout(people, cameras, {s: [] for s in SPLITS})
    for person in people:
        for split, crop in _assign(person):
            layout.files[split].append((file_name(person.pid, cameras[crop.camera], crop), crop))
    return layout


def _hold_out(people: list[Person], share: float, seed: int) -> None:
    """``share`` of the people seen by two or more cameras (at least one when ``share`` > 0)."""
    multi = [p for p in people if len(p.cameras) > 1]
    if share <= 0 or not multi:
        return
    n = max(1, int(round(share * len(multi))))
    rng = np.random.default_rng(seed)
    for i in rng.choice(len(multi), size=min(n, len(multi)), replace=False).tolist():
        multi[i].held_out = True


def _assign(person: Person) -> list[tuple[str, PlannedCrop]]:
    if not person.held_out:
        return [("bounding_box_train", c) for c in person.crops]
    out = []
    for cam in person.cameras:
        mine = [c for c in person.crops if c.camera == cam]
        query = mine[len(mine) // 2]
        out += [("query" if c is query else "bounding_box_test", c) for c in mine]
    return out


def file_name(pid: int, cam: int, crop: PlannedCrop) -> str:
    return f"{pid:04d}_c{cam}s{crop.run}_{crop.frame:06d}_00.jpg"


def check_enough(layout: Layout, p: int) -> None:
    """Enough training pseudo-identities for a P x K batch, and someone held out to evaluate on."""
    train = [x for x in layout.people if not x.held_out]
    if len(train) < p:
        raise DatasetError(
            f"{len(train)} pseudo-identities to train on (of {len(layout.people)} mined with {MIN_CROPS}+ crops), "
            f"fewer than the P={p} people of a P x K batch: give more or longer runs, or --set stages.*.p=N"
        )
    if not any(x.held_out for x in layout.people):
        raise DatasetError(
            "no pseudo-identity seen by two cameras to hold out for evaluation: adapt needs runs where "
            "the linker joined people across cameras with confidence"
        )


class DatasetWriter:
    """Writes the crops of a layout into a temporary folder beside ``dest``; :meth:`commit` renames it."""

    def __init__(self, dest: Path, layout: Layout, run_folders: dict[int, str]):
        self.dest = dest
        self.layout = layout
        self.run_folders = run_folders
        self.names = {(split, id(c)): name for split, rows in layout.files.items() for name, c in rows}
        self.split_of = {id(c): split for split, rows in layout.files.items() for _, c in rows}
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=str(dest.parent)))
            for split in SPLITS:
                (self.tmp / split).mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write the mined set beside {dest} ({exc.strerror or exc})") from None
        self.written = 0

    def write(self, crop: PlannedCrop, image: np.ndarray) -> None:
        import cv2

        split = self.split_of[id(crop)]
        path = self.tmp / split / self.names[(split, id(crop))]
        if image.size == 0 or not cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise OutputError(f"cannot write crop {path}")
        self.written += 1

    def commit(self) -> None:
        try:
            self._write_index()
            if self.dest.exists():
                shutil.rmtree(self.dest)
            self.tmp.rename(self.dest)
        except OSError as exc:
            raise OutputError(f"cannot move the mined set into {self.dest} ({exc.strerror or exc})") from None

    def _write_index(self) -> None:
        import csv

        with open(self.tmp / "crops.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["file", "run", "camera", "track", "frame", "x1", "y1", "x2", "y2"])
            for split, rows in self.layout.files.items():
                for name, c in rows:
                    w.writerow([f"{split}/{name}", self.run_folders[c.run], c.camera, c.track, c.frame, *c.bbox])

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def summary(layout: Layout) -> dict[str, Any]:
    """Counts of the mined set for adapt.json and the console."""
    train = [p for p in layout.people if not p.held_out]
    held = [p for p in layout.people if p.held_out]
    return {
        "identities": len(layout.people),
        "train_identities": len(train),
        "held_out_identities": len(held),
        "crops": sum(len(p.crops) for p in layout.people),
        "train_crops": sum(len(p.crops) for p in train),
        "cameras": {name: c for name, c in layout.cameras.items()},
        "multi_camera_identities": sum(len(p.cameras) > 1 for p in layout.people),
        "files": {split: len(rows) for split, rows in layout.files.items()},
    }


__all__ = ["MIN_CROPS", "DatasetWriter", "Layout", "Person", "build_layout", "check_enough", "file_name", "summary"]
