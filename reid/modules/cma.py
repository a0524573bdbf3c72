"""Cross-Modal Attention (CMA), paper 001 §2.3, Eq. (1) (variant ``can_cma``).

The paper (translated): image and text features are first mapped by two linear layers into a common
hidden space; self-attention is applied to each; the dot products between the self-attended image and
text features give an attention-score matrix, normalised by softmax, "the attention distribution of each
image feature vector over all text feature vectors"; the text features are summed with these weights,
combined with the image projection through a residual connection, and give the output feature, which is
then used in the image-text similarity computation. Eq. (1)::

    O = W_o( softmax( (W_i A_i) · (W_t A_t)ᵀ ) · W_t A_t + W_i A_i ) + b_o

with A_i, A_t the self-attended image and text features, W_i, W_t, W_o weight matrices and b_o the only
bias. Implementation, module by module:

- ``img_in`` / ``txt_in``: Linear(dim -> hidden), the "two linear layers" into the common space;
- ``img_self_attn`` / ``txt_self_attn``: multi-head self-attention (``heads`` heads) giving A_i, A_t;
- ``w_i`` / ``w_t``: Linear(hidden -> hidden, no bias), W_i and W_t of Eq. (1);
- ``w_o``: Linear(hidden -> dim) with bias b_o.

The softmax runs over the text axis, unscaled as Eq. (1) writes it (``scaled=True`` divides the scores
by sqrt(hidden)). Sequences: the image side is the token sequence of one image (self-attention inside
each image, so an image's output never depends on the other images of the batch), the text side is the
set of identity text features (self-attention across identities). The output is taken at the image's
class-token position (or at its single vector when a (N, dim) global feature is given).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class CrossModalAttention(nn.Module):
    def __init__(self, dim: int = 512, hidden: int = 512, heads: int = 8, dropout: float = 0.0, scaled: bool = False):
        super().__init__()
        self.img_in = nn.Linear(dim, hidden)
        self.txt_in = nn.Linear(dim, hidden)
        self.img_self_attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.txt_self_attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.w_i = nn.Linear(hidden, hidden, bias=False)
        self.w_t = nn.Linear(hidden, hidden, bias=False)
        self.w_o = nn.Linear(hidden, dim, bias=True)
        self.scaled = bool(scaled)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """image: (N, L, dim) tokens with the class token first, or (N, dim); text: (K, dim) shared by
        the batch, or (N, K, dim). Returns O: (N, dim), Eq. (1) at the class-token position."""
        if image.dim() == 2:
            image = image.unsqueeze(1)
        x = self.img_in(image)
        a_i = self.img_self_attn(x, x, x, need_weights=False)[0][:, 0]  # (N, hidden)
        y = self.txt_in(text if text.dim() == 3 else text.unsqueeze(0))
        a_t = self.txt_self_attn(y, y, y, need_weights=False)[0]  # (1|N, K, hidden)
        qi = self.w_i(a_i)  # W_i A_i  (N, hidden)
        kt = self.w_t(a_t)  # W_t A_t
        if text.dim() == 2:
            kt = kt[0]  # (K, hidden)
            scores = qi @ kt.t()
        else:
            scores = torch.einsum("nh,nkh->nk", qi, kt)
        if self.scaled:
            scores = scores / math.sqrt(qi.shape[-1])
        attn = scores.softmax(dim=-1)  # over the texts
        attended = attn @ kt if kt.dim() == 2 else torch.einsum("nk,nkh->nh", attn, kt)
        return self.w_o(attended + qi)
