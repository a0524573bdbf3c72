"""Text-Guided Image module (TGI), paper 000 §3.4 (variant ``mscsa_tgi``).

A transformer decoder whose queries are the identity text features learnt in stage 1 and whose keys and
values are the visual tokens of ResNet stage 3 (after its MSCSA block). Sizes from the paper (§4.2):
3 decoder layers, 4 attention heads, feature width 256.

Each decoder layer is pre-norm, as the paper describes it step by step::

    x = x + SelfAttn(LN1(x))                     "normalisation layer, then self-attention, connected"
    x = x + CrossAttn(q=LN2(x), k=v=memory)      "standardised again, query of the cross-attention"
    x = x + MLP(LN3(x))                          "third standardisation layer, then an MLP"

Around the decoder (DenseCLIP's context decoder, which the paper cites as its model): the text
features are layer-normed and linearly projected to the width (text_dim -> 256); the visual tokens are
layer-normed, projected (visual_dim -> 256) and layer-normed; the decoder output is layer-normed and
projected back (256 -> text_dim). The fused text features are then::

    t_fused = t + γ ⊙ decoder(t, v)              γ ∈ R^text_dim, learnable, initialised to gamma_init

The value the paper gives γ was lost in extraction ("set to a very tiny value"); we use DenseCLIP's 1e-4.
The MLP is width -> 4·width -> width with GELU; attention and MLP dropout 0.1 (DenseCLIP's setting).
"""

from __future__ import annotations

import torch
from torch import nn

from reidpipe.errors import ConfigError


class TGIDecoderLayer(nn.Module):
    """One pre-norm decoder layer: self-attention, cross-attention, MLP, each with a residual."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, dropout: float = 0.1):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.self_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.cross_attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm3 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(self.self_attn(h, h, h, need_weights=False)[0])
        h = self.norm2(x)
        x = x + self.drop(self.cross_attn(h, memory, memory, need_weights=False)[0])
        return x + self.drop(self.mlp(self.norm3(x)))


class TextGuidedDecoder(nn.Module):
    """Fuses text features with visual tokens; returns ``t + γ ⊙ decoder(t, v)`` (see module docstring).

    Args:
        text_dim: size of the text features (CLIP RN50: 1024).
        visual_dim: channels of the visual tokens (ResNet-50 stage 3: 1024).
        width, heads, layers: decoder sizes (paper: 256, 4, 3).
        gamma_init: initial value of the residual scale γ (near zero keeps the text prior).
    """

    def __init__(
        self,
        text_dim: int,
        visual_dim: int,
        *,
        width: int = 256,
        heads: int = 4,
        layers: int = 3,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        gamma_init: float = 1e-4,
    ):
        super().__init__()
        if width % heads:
            raise ConfigError(f"tgi_width={width} is not divisible by tgi_heads={heads}")
        if layers < 1:
            raise ConfigError(f"tgi_layers={layers}: must be >= 1")
        self.text_proj = nn.Sequential(nn.LayerNorm(text_dim), nn.Linear(text_dim, width))
        self.memory_proj = nn.Sequential(nn.LayerNorm(visual_dim), nn.Linear(visual_dim, width), nn.LayerNorm(width))
        self.layers = nn.ModuleList(TGIDecoderLayer(width, heads, mlp_ratio, dropout) for _ in range(layers))
        self.out_proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, text_dim))
        self.gamma = nn.Parameter(torch.full((text_dim,), float(gamma_init)))
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """text: (K, text_dim) shared by the batch, or (N, K, text_dim); visual: (N, L, visual_dim) tokens
        or an (N, visual_dim, H, W) map. Returns the fused text features, (N, K, text_dim)."""
        if visual.dim() == 4:
            visual = visual.flatten(2).transpose(1, 2)
        if text.dim() == 2:
            text = text.unsqueeze(0).expand(visual.shape[0], -1, -1)
        memory = self.memory_proj(visual)
        x = self.text_proj(text)
        for layer in self.layers:
            x = layer(x, memory)
        return text + self.gamma * self.out_proj(x)
