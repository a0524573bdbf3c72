"""π-VL pixel-level losses (paper 002): dense image-text contrastive (Eq. 7-8) and MSE alignment (Eq. 11).

Both read, from the model output, a dense visual map, the text embeddings of the (identity, body part)
pairs present in the batch, and, per pixel, the index of its pair's text row:

- ``input``       (N, D, h, w) visual embeddings per pixel;
- ``text_input``  (M, D) part-informed text embeddings, one row per (identity, part) pair of the batch;
- ``index_input`` (N, h, w) long, the text row of each pixel, -1 where the pixel is ignored (parsing
  label 255, or outside the map).

``pixel_contrastive`` (Eq. 7-8, formulas lost in extraction; the text: "we treat text and visual
embeddings of the same person and the same body part as positive pairs, while counting the others as
negative pairs", InfoNCE with temperature tau, "inspired by" DenseCL [51]). Chosen form, the two
directions of CLIP-style InfoNCE over the batch, on L2-normalised embeddings:

    L_p2t = -mean_p log softmax_m(<v_p, t_m> / tau)[m(p)]                  (pixel -> text)
    L_t2p = -mean_m mean_{p: m(p) = m} log softmax_p(<t_m, v_p> / tau)       (text -> pixel, all positives)
    L_dense = (L_p2t + L_t2p) / 2

Every text row is a distinct (identity, part) pair, so each pixel has exactly one positive text and
every other pair (same identity other part, same part other identity, ...) is a negative. ``tau`` is not
given by the paper: default 0.07 (CLIP's temperature, the space of the frozen encoders); ``directions``
= "both" | "p2t" | "t2p"; ``max_pixels`` caps the pixels scored per step (random subset, 0 = all).

``pixel_mse`` (Eq. 11, "a simple mean squared error loss"): mean over the valid pixels and channels of
``(v_p - t_m(p))^2``, the text side detached (stage-2 text features are fixed). ``normalize=True``
L2-normalises both sides first (not the paper's default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reidpipe.errors import ConfigError
from reidpipe.reid.losses.base import Loss, read_output, register_loss


def _gather_pixels(output, loss: Loss, pixel_key: str, text_key: str, index_key: str):
    pixels = read_output(output, pixel_key, loss.name)
    texts = read_output(output, text_key, loss.name)
    index = read_output(output, index_key, loss.name)
    if pixels.dim() != 4 or index.dim() != 3 or tuple(index.shape) != (pixels.shape[0], *pixels.shape[2:]):
        raise ConfigError(
            f"loss {loss.name!r}: {pixel_key!r} must be (N, D, h, w) and {index_key!r} (N, h, w); "
            f"got {tuple(pixels.shape)} and {tuple(index.shape)}"
        )
    if texts.dim() != 2 or texts.shape[1] != pixels.shape[1]:
        raise ConfigError(f"loss {loss.name!r}: {text_key!r} must be (M, {pixels.shape[1]}), got {tuple(texts.shape)}")
    flat = pixels.permute(0, 2, 3, 1).reshape(-1, pixels.shape[1])
    idx = index.reshape(-1).to(flat.device).long()
    valid = idx >= 0
    if int(idx.max()) >= texts.shape[0] if idx.numel() else False:
        raise ConfigError(f"loss {loss.name!r}: {index_key!r} points past the {texts.shape[0]} text rows")
    return flat[valid], idx[valid], texts


@register_loss("pixel_contrastive")
class PixelTextContrastiveLoss(Loss):
    DEFAULT_INPUT = "pixel_features"

    def __init__(
        self,
        temperature: float = 0.07,
        directions: str = "both",
        max_pixels: int = 0,
        text_input: str = "part_text_features",
        index_input: str = "pixel_text_index",
        input: str | None = None,
        reduce: str = "mean",
    ):
        super().__init__(input=input, reduce=reduce)
        if float(temperature) <= 0:
            raise ConfigError(f"pixel_contrastive temperature must be > 0, got {temperature!r}")
        if directions not in ("both", "p2t", "t2p"):
            raise ConfigError(f"pixel_contrastive directions must be 'both', 'p2t' or 't2p', got {directions!r}")
        self.temperature = float(temperature)
        self.directions = directions
        self.max_pixels = int(max_pixels)
        self.text_input, self.index_input = text_input, index_input

    def compute(self, output, batch: dict) -> torch.Tensor:
        pix, idx, texts = _gather_pixels(output, self, self.input, self.text_input, self.index_input)
        if pix.shape[0] == 0:
            return texts.sum() * 0.0 + read_output(output, self.input, self.name).sum() * 0.0
        if self.max_pixels and pix.shape[0] > self.max_pixels:
            keep = torch.randperm(pix.shape[0], device=pix.device)[: self.max_pixels]
            pix, idx = pix[keep], idx[keep]
        return dense_contrastive(pix.float(), texts.float(), idx, self.temperature, self.directions)

    def extra_repr(self) -> str:
        return f"input={self.input!r}, temperature={self.temperature}, directions={self.directions!r}"


def dense_contrastive(
    pixels: torch.Tensor, texts: torch.Tensor, index: torch.Tensor, temperature: float = 0.07, directions: str = "both"
) -> torch.Tensor:
    """InfoNCE between P pixel embeddings and M text rows; ``index[p]`` is pixel p's positive row."""
    logits = F.normalize(pixels, dim=1) @ F.normalize(texts, dim=1).t() / temperature  # (P, M)
    terms = []
    if directions in ("both", "p2t"):
        terms.append(F.cross_entropy(logits, index))
    if directions in ("both", "t2p"):
        log_prob = F.log_softmax(logits.t(), dim=1)  # (M, P): each text over the pixels
        pos = torch.arange(texts.shape[0], device=index.device).view(-1, 1) == index.view(1, -1)
        pos = pos.to(log_prob.dtype)
        n_pos = pos.sum(dim=1)
        has = n_pos > 0
        terms.append((-(pos * log_prob).sum(dim=1)[has] / n_pos[has]).mean())
    return torch.stack(terms).mean()


@register_loss("pixel_mse")
class PixelTextMSELoss(Loss):
    DEFAULT_INPUT = "fused_features"

    def __init__(
        self,
        normalize: bool = False,
        text_input: str = "part_text_features",
        index_input: str = "fused_text_index",
        input: str | None = None,
        reduce: str = "mean",
    ):
        super().__init__(input=input, reduce=reduce)
        self.normalize = bool(normalize)
        self.text_input, self.index_input = text_input, index_input

    def compute(self, output, batch: dict) -> torch.Tensor:
        pix, idx, texts = _gather_pixels(output, self, self.input, self.text_input, self.index_input)
        if pix.shape[0] == 0:
            return read_output(output, self.input, self.name).sum() * 0.0
        target = texts.detach()[idx].float()
        pix = pix.float()
        if self.normalize:
            pix, target = F.normalize(pix, dim=1), F.normalize(target, dim=1)
        return F.mse_loss(pix, target)

    def extra_repr(self) -> str:
        return f"input={self.input!r}, normalize={self.normalize}"


__all__ = ["PixelTextContrastiveLoss", "PixelTextMSELoss", "dense_contrastive"]
