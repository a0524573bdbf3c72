"""The papers' image transforms, applied jointly to an image and (for π-VL) its parsing map.

- Test / CLIP stage 1: resize to (H, W) (bilinear), scale to [0, 1], normalise with the model's mean/std.
- Training stage 2 (all four papers, after CLIP-ReID / BoT): resize, flip (p=0.5), pad 10 px (zeros)
  and random-crop back to (H, W), normalise, random erasing (p=0.5, area 2–33 %, aspect 0.3–3.3,
  filled with per-pixel normal noise — timm's ``mode='pixel'``, which CLIP-ReID uses).

Parsing maps are resized with nearest-neighbour and follow the same flip/pad/crop (padding is label 0,
background); random erasing changes only the image.

Randomness comes from an explicit ``seed`` per sample (the sampler hands one out with each index), so
an epoch's augmentations are the same whatever the number of loader workers, and a resumed run sees
exactly the images an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    flip: float = 0.0  # probability of a horizontal flip
    pad: int = 0  # pixels of zero padding before the random crop (0 = no crop)
    erasing: float = 0.0  # probability of random erasing
    erasing_area: tuple[float, float] = (0.02, 1 / 3)
    erasing_aspect: float = 0.3

    @classmethod
    def from_dict(cls, d: dict | None) -> AugmentConfig:
        d = dict(d or {})
        if "erasing_area" in d:
            d["erasing_area"] = tuple(d["erasing_area"])
        return cls(**d)


class ReIDTransform:
    """``(image uint8 tensor (3,h,w) RGB, parsing (h,w) int or None, seed) -> (image (3,H,W), parsing (H,W))``."""

    def __init__(self, size: tuple[int, int], mean, std, augment: AugmentConfig | None = None):
        self.size = (int(size[0]), int(size[1]))
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.aug = augment or AugmentConfig()

    @property
    def random(self) -> bool:
        return bool(self.aug.flip or self.aug.pad or self.aug.erasing)

    def __call__(self, image: torch.Tensor, parsing: torch.Tensor | None = None, seed: int | None = None):
        H, W = self.size
        img = image.float().div_(255.0).unsqueeze(0)
        if img.shape[-2:] != (H, W):
            img = F.interpolate(img, size=(H, W), mode="bilinear", align_corners=False, antialias=True)
        img = img.squeeze(0).clamp_(0, 1)
        par = None
        if parsing is not None:
            par = parsing.long()
            if par.shape != (H, W):
                par = F.interpolate(par[None, None].float(), size=(H, W), mode="nearest")[0, 0].long()
        if self.random:
            g = torch.Generator().manual_seed(int(seed if seed is not None else torch.randint(0, 2**31, (1,))))
            if self.aug.flip and torch.rand((), generator=g) < self.aug.flip:
                img = img.flip(-1)
                par = par.flip(-1) if par is not None else None
            if self.aug.pad:
                p = int(self.aug.pad)
                img = F.pad(img, (p, p, p, p))
                par = F.pad(par, (p, p, p, p)) if par is not None else None
                top = int(torch.randint(0, 2 * p + 1, (), generator=g))
                left = int(torch.randint(0, 2 * p + 1, (), generator=g))
                img = img[:, top : top + H, left : left + W]
                par = par[top : top + H, left : left + W] if par is not None else None
        img = (img - self.mean) / self.std
        if self.random and self.aug.erasing and torch.rand((), generator=g) < self.aug.erasing:
            img = _random_erase(img, g, self.aug.erasing_area, self.aug.erasing_aspect)
        return img.contiguous(), (par.contiguous() if par is not None else None)


def _random_erase(img: torch.Tensor, g: torch.Generator, area: tuple[float, float], aspect: float) -> torch.Tensor:
    C, H, W = img.shape
    log_r = (math.log(aspect), math.log(1 / aspect))
    for _ in range(10):
        target = float(torch.empty(()).uniform_(area[0], area[1], generator=g)) * H * W
        ar = math.exp(float(torch.empty(()).uniform_(log_r[0], log_r[1], generator=g)))
        h = round(math.sqrt(target * ar))
        w = round(math.sqrt(target / ar))
        if 0 < h < H and 0 < w < W:
            top = int(torch.randint(0, H - h + 1, (), generator=g))
            left = int(torch.randint(0, W - w + 1, (), generator=g))
            img = img.clone()
            img[:, top : top + h, left : left + w] = torch.randn((C, h, w), generator=g)
            return img
    return img
