"""A classical colour/texture person descriptor that needs no weights (``--reid hist``).

Every crop is resized to ``input_size`` (H, W) and cut into ``stripes`` horizontal bands (head,
torso, legs... as in the stripe-based ReID descriptors). Per stripe it computes

- a colour histogram in HSV: saturated pixels (S >= ``sat_threshold``) vote into a joint
  hue x saturation grid (``hue_bins`` x ``sat_bins``), unsaturated pixels (greys, black, white) vote
  into ``gray_bins`` brightness bins, since their hue is noise;
- a texture histogram: gradient orientation (``orient_bins`` bins over [0, pi)), weighted by gradient
  magnitude, plus one bin for the share of flat pixels.

Pixels are weighted by a horizontal Gaussian centred on the crop, so the background at the box's
left and right edges counts less than the person. Each histogram is normalised to sum 1, square-
rooted (Hellinger kernel: the dot product of two descriptors is the Bhattacharyya coefficient), the
texture blocks are scaled by ``texture_weight``, and the whole vector is L2-normalised.

Everything is vectorised over the batch with numpy (one ``cv2.cvtColor`` on the stacked crops, one
``np.bincount`` per histogram family); the only Python loop is the per-crop resize.
"""

from __future__ import annotations

import numpy as np


class HistEmbedder:
    """``embed(crops_bgr) -> (N, dim) float32``, L2-normalised rows.

    ``crops_bgr`` is a list of ``uint8`` BGR images of any sizes (H, W, 3); an empty crop (zero
    height or width) is an error naming its index.
    """

    name = "hist"
    link_threshold = 0.5  # default linking cosine (after camera centring) for this descriptor

    def __init__(
        self,
        input_size: tuple[int, int] = (128, 64),
        stripes: int = 6,
        hue_bins: int = 12,
        sat_bins: int = 2,
        gray_bins: int = 4,
        orient_bins: int = 8,
        sat_threshold: int = 40,
        texture_weight: float = 0.5,
        center_sigma: float = 0.2,
    ):
        h, w = int(input_size[0]), int(input_size[1])
        if h < stripes or w < 4:
            raise ValueError(f"HistEmbedder: input_size {input_size} too small for {stripes} stripes")
        self.input_size = (h, w)
        self.stripes = int(stripes)
        self.hue_bins, self.sat_bins, self.gray_bins = int(hue_bins), int(sat_bins), int(gray_bins)
        self.orient_bins = int(orient_bins)
        self.sat_threshold = int(sat_threshold)
        self.texture_weight = float(texture_weight)
        self.color_dim = self.hue_bins * self.sat_bins + self.gray_bins
        self.texture_dim = self.orient_bins + 1
        self.dim = self.stripes * (self.color_dim + self.texture_dim)
        # stripe index of each row, pixel weight of each column
        self._row_stripe = (np.arange(h) * self.stripes // h).astype(np.int64)
        x = (np.arange(w) + 0.5) / w - 0.5
        self._col_weight = np.exp(-0.5 * (x / center_sigma) ** 2).astype(np.float32)

    # ------------------------------------------------------------------ helpers
    def _stack(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        import cv2

        h, w = self.input_size
        out = np.empty((len(crops_bgr), h, w, 3), dtype=np.uint8)
        for i, c in enumerate(crops_bgr):
            a = np.asarray(c)
            if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] == 0 or a.shape[1] == 0:
                raise ValueError(f"HistEmbedder: crop {i} has shape {a.shape}, expected (H>0, W>0, 3)")
            if a.dtype != np.uint8:
                a = np.clip(a, 0, 255).astype(np.uint8)
            out[i] = cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA if a.shape[0] > h else cv2.INTER_LINEAR)
        return out

    def _hist(self, bins: np.ndarray, weights: np.ndarray, nbins: int) -> np.ndarray:
        """bins (N, H, W) int in [0, nbins) -> (N, stripes, nbins) weighted histograms, normalised."""
        n = bins.shape[0]
        cell = (np.arange(n)[:, None, None] * self.stripes + self._row_stripe[None, :, None]) * nbins + bins
        hist: np.ndarray = np.bincount(cell.ravel(), weights=weights.ravel(), minlength=n * self.stripes * nbins)
        hist = hist.reshape(n, self.stripes, nbins).astype(np.float32)
        hist /= np.maximum(hist.sum(-1, keepdims=True), 1e-12)
        return hist

    def _hist2(self, lo: np.ndarray, hi: np.ndarray, frac: np.ndarray, weights: np.ndarray, nbins: int) -> np.ndarray:
        """Soft histogram: each pixel gives (1 - frac) of its weight to bin ``lo`` and frac to ``hi``."""
        n = lo.shape[0]
        base = (np.arange(n)[:, None, None] * self.stripes + self._row_stripe[None, :, None]) * nbins
        size = n * self.stripes * nbins
        hist: np.ndarray = np.bincount((base + lo).ravel(), weights=(weights * (1.0 - frac)).ravel(), minlength=size)
        hist += np.bincount((base + hi).ravel(), weights=(weights * frac).ravel(), minlength=size)
        hist = hist.reshape(n, self.stripes, nbins).astype(np.float32)
        hist /= np.maximum(hist.sum(-1, keepdims=True), 1e-12)
        return hist

    # ------------------------------------------------------------------ API
    def embed(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        import cv2

        if len(crops_bgr) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        imgs = self._stack(crops_bgr)
        n, h, w, _ = imgs.shape
        hsv = cv2.cvtColor(imgs.reshape(n * h, w, 3), cv2.COLOR_BGR2HSV).reshape(n, h, w, 3)
        hue = hsv[..., 0].astype(np.int64)  # OpenCV: 0..179
        sat = hsv[..., 1].astype(np.int64)
        val = hsv[..., 2].astype(np.int64)
        weight = np.broadcast_to(self._col_weight[None, None, :], (n, h, w))

        # colour: saturated pixels -> hue x sat grid; unsaturated -> grey levels. Hue (circular) and
        # grey level are soft-binned (each pixel split linearly between its two nearest bin centres),
        # so a small lighting change moves mass smoothly instead of flipping bins.
        saturated = sat >= self.sat_threshold
        hpos = hue.astype(np.float32) * (self.hue_bins / 180.0) - 0.5
        h0 = np.floor(hpos)
        hfrac = hpos - h0
        h0 = h0.astype(np.int64) % self.hue_bins
        h1 = (h0 + 1) % self.hue_bins
        sb = np.minimum(
            (sat - self.sat_threshold) * self.sat_bins // max(256 - self.sat_threshold, 1), self.sat_bins - 1
        ).clip(0)
        gpos = np.clip(val.astype(np.float32) * (self.gray_bins / 256.0) - 0.5, 0, self.gray_bins - 1)
        g0 = (
            np.minimum(np.floor(gpos).astype(np.int64), self.gray_bins - 2)
            if self.gray_bins > 1
            else np.zeros_like(val)
        )
        gfrac = gpos - g0 if self.gray_bins > 1 else np.zeros_like(gpos)
        gray_base = self.hue_bins * self.sat_bins
        bin_lo = np.where(saturated, h0 * self.sat_bins + sb, gray_base + g0)
        bin_hi = np.where(saturated, h1 * self.sat_bins + sb, gray_base + np.minimum(g0 + 1, self.gray_bins - 1))
        frac = np.where(saturated, hfrac, gfrac)
        color = self._hist2(bin_lo, bin_hi, frac, weight, self.color_dim)

        # texture: gradient orientation histogram weighted by magnitude, + share of flat pixels
        gray = (0.114 * imgs[..., 0] + 0.587 * imgs[..., 1] + 0.299 * imgs[..., 2]).astype(np.float32)
        gy, gx = np.gradient(gray, axis=(1, 2))
        mag = np.hypot(gx, gy)
        ang = np.mod(np.arctan2(gy, gx), np.pi)
        ob = np.minimum((ang * (self.orient_bins / np.pi)).astype(np.int64), self.orient_bins - 1)
        flat = mag < 8.0
        tex_bin = np.where(flat, self.orient_bins, ob)
        tex_w = np.where(flat, 8.0, mag) * weight
        texture = self._hist(tex_bin, tex_w, self.texture_dim)

        feat = np.concatenate([np.sqrt(color), self.texture_weight * np.sqrt(texture)], axis=-1)
        feat = feat.reshape(n, self.dim)
        feat /= np.maximum(np.linalg.norm(feat, axis=1, keepdims=True), 1e-12)
        return feat.astype(np.float32, copy=False)

    __call__ = embed


__all__ = ["HistEmbedder"]
