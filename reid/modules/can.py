"""Context Adjustment Network (CAN), paper 001 §2.2 (variant ``can_cma``).

The paper (translated): "the first linear layer enlarges the input feature from 512 to 2× dimensions,
... a ReLU ..., the second linear layer compresses the feature back to the original 512 dimensions.
The adjusted image feature M is an additional input that dynamically adjusts the generation of the text
prompt; the final context vector is C_N = [Y]_N + M, where M = g(I_f, γ), I_f the image feature and γ
the network's parameters."

So ``M = Linear(1024→512)(ReLU(Linear(512→1024)(I_f)))`` and every learnable context token of the prompt
gets the same ``M`` added (a CoCoOp-style meta-net, but with the paper's 2× expansion instead of
CoCoOp's 1/16 bottleneck). Trained in stage 1 together with the context tokens.
"""

from __future__ import annotations

import torch
from torch import nn


class ContextAdjustmentNet(nn.Module):
    """g(I_f; γ): image feature (…, in_dim) -> context offset M (…, ctx_dim)."""

    def __init__(self, in_dim: int = 512, ctx_dim: int = 512, expansion: int = 2):
        super().__init__()
        hidden = int(in_dim * expansion)
        self.fc1 = nn.Linear(in_dim, hidden)
        self.act = nn.ReLU(inplace=False)
        self.fc2 = nn.Linear(hidden, ctx_dim)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(image_features)))

    @staticmethod
    def adjust(context: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """C_n = Y_n + M for every context token n.

        context: (B, n, D) context tokens of each prompt (identity-specific rows already gathered);
        offset: (B, D) the CAN output M of the image paired with each prompt. Returns (B, n, D).
        """
        return context + offset.unsqueeze(1).to(context.dtype)
