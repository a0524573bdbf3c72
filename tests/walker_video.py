"""A synthetic camera for unit tests: one person (a coloured block) walking right, with its det.txt."""

from __future__ import annotations

import cv2
import numpy as np


def render(folder, name, start, n=50, colour=(30, 60, 200), size=(120, 160)):
    """One person (a coloured block) walking right from frame ``start``; the video and its det.txt."""
    h, w = size
    video = folder / f"{name}.mp4"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    lines = []
    for i in range(n):
        img = np.full((h, w, 3), 210, np.uint8)
        if i >= start:
            x = 10 + 2 * (i - start)
            cv2.rectangle(img, (x, 25), (x + 24, 105), colour, -1)
            cv2.rectangle(img, (x, 65), (x + 24, 105), (40, 40, 40), -1)
            lines.append(f"{i + 1},-1,{x},25,25,81,0.9,-1,-1,-1")
        vw.write(img)
    vw.release()
    (folder / f"{name}_det.txt").write_text("\n".join(lines) + "\n")
    return str(video), str(folder / f"{name}_det.txt")
