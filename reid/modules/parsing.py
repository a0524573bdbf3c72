"""π-VL part-informed prompts from human-parsing maps (paper 002, Sec. 3.3, Eq. 5-6).

- LIP's 20 parsing classes (``LIP_CLASSES``, ids 0..19, 0 = background) and the words used in the
  part prompts (``PART_WORDS``). Label 255 (``IGNORE_LABEL``) marks pixels without a label (padding,
  erased or unlabelled regions) and is ignored by the losses.
- :func:`downsample_parsing` brings an (N, H, W) parsing map to a feature grid (h, w) by majority vote in
  each cell (the paper notes that "the downsampling operation can effectively erase several outliers in
  parsing maps"); cells where ignored pixels are the majority are ignored.
- :func:`pixel_pairs` gives each grid pixel its (identity, part) pair: the unique pairs of the batch
  and, per pixel, the index of its pair (-1 = ignored).
- :class:`PartPromptEncoder` — Eq. 6: the part text embedding of (identity y, part k) is the text encoder
  applied to the concatenation of identity y's learnable prompt and the part word's tokens,
  ``"A photo of a X X X X person's {part}."`` (X X X X = identity y's learnable tokens, shared with the
  identity prompt ``"A photo of a X X X X person."`` of stage 1); "aggregate" places each pair's
  embedding on its pixels, which the losses do by indexing (``pixel_text_index``), never materialising an
  (N, D, h, w) text map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reidpipe.errors import ConfigError

LIP_CLASSES = (
    "Background",
    "Hat",
    "Hair",
    "Glove",
    "Sunglasses",
    "UpperClothes",
    "Dress",
    "Coat",
    "Socks",
    "Pants",
    "Jumpsuits",
    "Scarf",
    "Skirt",
    "Face",
    "Left-arm",
    "Right-arm",
    "Left-leg",
    "Right-leg",
    "Left-shoe",
    "Right-shoe",
)
PART_WORDS = (
    "background",
    "hat",
    "hair",
    "glove",
    "sunglasses",
    "upper clothes",
    "dress",
    "coat",
    "socks",
    "pants",
    "jumpsuit",
    "scarf",
    "skirt",
    "face",
    "left arm",
    "right arm",
    "left leg",
    "right leg",
    "left shoe",
    "right shoe",
)
NUM_PARTS = len(LIP_CLASSES)
IGNORE_LABEL = 255
PART_TEMPLATE = "A photo of a X X X X person's {part}."


def check_parsing(parsing: torch.Tensor, batch_size: int, num_parts: int = NUM_PARTS) -> torch.Tensor:
    """Validate a batch of parsing maps (one per image of the batch); returns it as a long tensor."""
    if not torch.is_tensor(parsing) or parsing.dim() != 3 or parsing.shape[0] != batch_size:
        shape = tuple(parsing.shape) if torch.is_tensor(parsing) else type(parsing).__name__
        raise ConfigError(f"parsing must be a LongTensor (N, H, W) with N = {batch_size} images, got {shape}")
    if parsing.is_floating_point():
        raise ConfigError("parsing must hold integer LIP class ids 0..19 (255 = ignore), got a float tensor")
    parsing = parsing.long()
    bad = (parsing >= num_parts) & (parsing != IGNORE_LABEL) | (parsing < 0)
    if bool(bad.any()):
        value = int(parsing[bad][0])
        raise ConfigError(f"parsing holds label {value}; LIP labels are 0..{num_parts - 1} (255 = ignore)")
    return parsing


def downsample_parsing(parsing: torch.Tensor, size: Sequence[int], num_parts: int = NUM_PARTS) -> torch.Tensor:
    """(N, H, W) labels -> (N, h, w) labels by majority vote per cell; -1 where ignored pixels win."""
    h, w = int(size[0]), int(size[1])
    labels = parsing.long().clone()
    labels[labels == IGNORE_LABEL] = num_parts
    if tuple(labels.shape[-2:]) == (h, w):
        out = labels
    else:
        onehot = F.one_hot(labels, num_parts + 1).permute(0, 3, 1, 2).float()
        out = F.adaptive_avg_pool2d(onehot, (h, w)).argmax(dim=1)
    return torch.where(out == num_parts, torch.full_like(out, -1), out)


def pixel_pairs(grid_labels: torch.Tensor, identities: torch.Tensor, num_parts: int = NUM_PARTS):
    """(N, h, w) part labels (-1 ignored) and (N,) identities ->
    ``(pair_ids, pair_parts, index)``: the (M,) identities and (M,) parts of the unique pairs present,
    and the (N, h, w) index of each pixel's pair (-1 ignored)."""
    ids = identities.to(grid_labels.device).long().view(-1, 1, 1).expand_as(grid_labels)
    code = ids * num_parts + grid_labels
    valid = grid_labels >= 0
    uniq, inverse = torch.unique(code[valid], return_inverse=True)
    index = torch.full_like(grid_labels, -1)
    index[valid] = inverse
    return uniq // num_parts, uniq % num_parts, index


class PartPromptEncoder(nn.Module):
    """Part-informed text embeddings of (identity, part) pairs (Eq. 6) on a shared prompt learner.

    Registers one template per LIP class on ``learner`` (``part_0`` .. ``part_19``), all sharing its
    identity tokens. ``forward(pair_ids, pair_parts) -> (M, proj_dim)``: one text-encoder pass over all
    pairs. Holds no parameters of its own (the identity tokens live in the learner).
    """

    def __init__(self, learner, template: str = PART_TEMPLATE, part_words: Sequence[str] = PART_WORDS):
        super().__init__()
        if "{part}" not in template:
            raise ConfigError(f"part prompt template {template!r} must contain '{{part}}'")
        self._learner = (learner,)  # reference only: the learner is registered by its owner
        self.part_words = tuple(part_words)
        self.template = template
        for k, word in enumerate(self.part_words):
            learner.add_template(f"part_{k}", template.format(part=word))

    @property
    def learner(self):
        return self._learner[0]

    def forward(self, pair_ids: torch.Tensor, pair_parts: torch.Tensor) -> torch.Tensor:
        learner = self.learner
        embs, eots, order = [], [], []
        for k in torch.unique(pair_parts).tolist():
            sel = (pair_parts == k).nonzero().flatten()
            emb, eot = learner(pair_ids[sel], template=f"part_{int(k)}")
            embs.append(emb)
            eots.append(eot)
            order.append(sel)
        if not embs:
            return torch.zeros(0, learner.backbone.proj_dim, device=pair_ids.device)
        feats = learner.backbone.encode_text_embeddings(torch.cat(embs), torch.cat(eots))
        out = torch.empty_like(feats)
        out[torch.cat(order).to(feats.device)] = feats
        return out


__all__ = [
    "IGNORE_LABEL",
    "LIP_CLASSES",
    "NUM_PARTS",
    "PART_TEMPLATE",
    "PART_WORDS",
    "PartPromptEncoder",
    "check_parsing",
    "downsample_parsing",
    "pixel_pairs",
]
