"""CLIP-ReID's image-text losses (Li et al., AAAI 2023).

Stage 1 (prompt learning) aligns image features ``V`` (N, E) and the text features ``T`` (N, E) of
the batch's identity prompts with two supervised contrastive losses over the batch:

- ``i2t_contrastive``: for each image i, a softmax over the batch's texts;
  ``L_i2t = -mean_i mean_{j: y_j = y_i} log softmax_j(s * <V_i, T_j>)``.
- ``t2i_contrastive``: for each text t (identity y_t), a softmax over the batch's images, averaged
  over **all positives of that identity in the batch**:
  ``L_t2i = -mean_t mean_{i: y_i = y_t} log softmax_i(s * <T_t, V_i>)``.

``s`` is the logit scale. CLIP-ReID's reference code uses raw (un-normalised) features and a fixed
scale of 1 (temperature 1.0); that is the default here (``normalize=False, logit_scale=1.0``).
``normalize=True`` with ``logit_scale=1/0.07`` gives CLIP's cosine form, and ``learnable_scale=True``
makes ``log s`` a parameter of the loss set (as CLIP's ``logit_scale``; clamped to s <= 100).

Inputs: ``image_input`` (default ``image_features_proj``), ``text_input`` (default ``text_features``);
the text rows' identities are ``extras[text_labels]`` when the model provides them (default key
``text_labels``), else ``batch['labels']`` (one prompt per image, CLIP-ReID's stage 1).

Stage 2's image-to-text cross-entropy is ``i2t_ce`` in ``classification.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from reidpipe.errors import ConfigError
from reidpipe.reid.losses.base import Loss, as_list, batch_labels, read_output, register_loss
from reidpipe.reid.output import ReIDOutput


def supervised_contrastive(
    queries: torch.Tensor,
    keys: torch.Tensor,
    q_labels: torch.Tensor,
    k_labels: torch.Tensor,
    scale: torch.Tensor | float,
) -> torch.Tensor:
    """Mean over queries of the mean negative log-softmax (over keys) of the keys that share the
    query's label. Queries with no positive key are left out."""
    logits = scale * (queries @ keys.t())
    log_prob = F.log_softmax(logits, dim=1)
    pos = (q_labels.view(-1, 1) == k_labels.view(1, -1)).to(log_prob.dtype)
    n_pos = pos.sum(dim=1)
    valid = n_pos > 0
    if not bool(valid.any()):
        raise ConfigError("image-text contrastive loss: no text in the batch shares an image's identity")
    per_query = -(pos * log_prob).sum(dim=1)[valid] / n_pos[valid]
    return per_query.mean()


class _ImageTextContrastive(Loss):
    DEFAULT_INPUT = "image_features_proj"
    TEXT_TO_IMAGE = False

    def __init__(
        self,
        image_input: str = "image_features_proj",
        text_input: str = "text_features",
        text_labels: str = "text_labels",
        normalize: bool = False,
        logit_scale: float = 1.0,
        learnable_scale: bool = False,
        input: str | None = None,
        reduce: str = "mean",
    ):
        super().__init__(input=input or image_input, reduce=reduce)
        if float(logit_scale) <= 0:
            raise ConfigError(f"logit_scale must be > 0, got {logit_scale!r}")
        self.image_input = input or image_input
        self.text_input = text_input
        self.text_labels_key = text_labels
        self.normalize = bool(normalize)
        log_scale = torch.tensor(math.log(float(logit_scale)))
        if learnable_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale, persistent=False)

    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(100.0)).exp()

    def compute(self, output: ReIDOutput, batch: dict) -> torch.Tensor:
        images = as_list(read_output(output, self.image_input, self.name))
        texts = read_output(output, self.text_input, self.name)
        labels = batch_labels(batch, self.name).to(texts.device if torch.is_tensor(texts) else images[0].device)
        t_labels = output.extras.get(self.text_labels_key)
        t_labels = labels if t_labels is None else t_labels.to(labels.device)
        texts_l = list(as_list(texts))
        if len(texts_l) == 1 and len(images) > 1:
            texts_l = texts_l * len(images)
        if len(texts_l) != len(images):
            raise ConfigError(f"loss {self.name!r}: {len(images)} image inputs but {len(texts_l)} text inputs")
        terms = []
        for v, t in zip(images, texts_l, strict=True):
            v, t = v.float(), t.float()
            if self.normalize:
                v, t = F.normalize(v, dim=1), F.normalize(t, dim=1)
            if v.shape[1] != t.shape[1]:
                raise ConfigError(
                    f"loss {self.name!r}: image features ({v.shape[1]}) and text features "
                    f"({t.shape[1]}) have different widths"
                )
            s = self.scale()
            if self.TEXT_TO_IMAGE:
                terms.append(supervised_contrastive(t, v, t_labels, labels, s))
            else:
                terms.append(supervised_contrastive(v, t, labels, t_labels, s))
        total = torch.stack(terms).sum()
        return total / len(terms) if self.reduce == "mean" and len(terms) > 1 else total

    def extra_repr(self) -> str:
        return (
            f"image_input={self.image_input!r}, text_input={self.text_input!r}, "
            f"normalize={self.normalize}, learnable_scale={isinstance(self.log_scale, nn.Parameter)}"
        )


@register_loss("i2t_contrastive")
class ImageToTextContrastive(_ImageTextContrastive):
    TEXT_TO_IMAGE = False


@register_loss("t2i_contrastive")
class TextToImageContrastive(_ImageTextContrastive):
    TEXT_TO_IMAGE = True
