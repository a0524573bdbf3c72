"""Learnable text prompts for CLIP-based ReID (CLIP-ReID, CAN, π-VL part prompts).

A :class:`PromptLearner` turns *templates* with placeholder words into token-embedding sequences in
which the placeholders are learnable vectors:

- ``X`` (``class_token``): **identity tokens**, class-specific: parameter ``cls_ctx`` of shape
  (num_classes, n_x, text_width), initialised N(0, 0.02) as in CLIP-ReID. The default template is
  CLIP-ReID's ``"A photo of a X X X X person."`` (n_x = 4).
- ``Y`` (``context_token``): **shared context tokens**: parameter ``ctx`` of shape (n_y, text_width),
  N(0, 0.02) (CoOp style), e.g. CAN's ``"Y Y Y Y Y Y Y Y person."`` (n_y = 8).

Several templates can share the same learnable tokens (π-VL: ``"A photo of a X X X X person."`` for
identities and ``"A photo of a X X X X person's {part}."`` per body part): :meth:`add_template`
registers more; all templates of one learner have the same numbers of X and Y slots (or none).

``learner(labels, template="default", cls_offset=None, ctx_offset=None)`` returns ``(embeddings,
eot_index)``: (N, 77, text_width) token embeddings (the fixed words embedded with CLIP's frozen token
embedding at call time, so they always match the loaded weights) and the end-of-text positions. The
optional additive offsets are how image-conditioned prompts are built: CAN's ``C_n = Y_n + M(image)``
is ``ctx_offset=M`` with M of shape (N, text_width) (one per image, broadcast over the n_y tokens) or
(N, n_y, text_width); ``cls_offset`` does the same for the identity tokens.

``learner.encode(labels, ...)`` goes on through CLIP's text transformer and returns the (N, proj_dim)
text features (the EOT token after ``ln_final`` and ``text_projection``), via :class:`TextEncoder`.
The learner keeps a *reference* to the backbone (not a sub-module), so the backbone's weights are
saved once, by its owner.
"""

from __future__ import annotations

import torch
from torch import nn

from reidpipe.errors import ConfigError

__all__ = ["PromptLearner", "TextEncoder", "CLIPREID_TEMPLATE"]

CLIPREID_TEMPLATE = "A photo of a X X X X person."


class TextEncoder:
    """Runs token-embedding sequences through CLIP's text transformer (a view of a CLIPBackbone).

    ``TextEncoder(backbone)(embeddings (N, L, W), eot_index (N,)) -> (N, proj_dim)``.
    """

    def __init__(self, backbone):
        self.backbone = backbone

    def __call__(self, embeddings: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        return self.backbone.encode_text_embeddings(embeddings, eot_index)


class PromptLearner(nn.Module):
    def __init__(
        self,
        backbone,
        num_classes: int,
        template: str = CLIPREID_TEMPLATE,
        *,
        class_token: str = "X",
        context_token: str = "Y",
        init_std: float = 0.02,
    ):
        super().__init__()
        self._backbone = (backbone,)  # a reference, deliberately not a registered sub-module
        self.num_classes = int(num_classes)
        self.class_token = class_token
        self.context_token = context_token
        self.init_std = float(init_std)
        self.text_width = backbone.text_width
        self._class_id = self._single_token_id(class_token)
        self._context_id = self._single_token_id(context_token)
        self.templates: dict[str, str] = {}
        self.n_x: int | None = None
        self.n_y: int | None = None
        self.cls_ctx: nn.Parameter | None = None
        self.ctx: nn.Parameter | None = None
        self.add_template("default", template)

    @property
    def backbone(self):
        return self._backbone[0]

    @property
    def device(self) -> torch.device:
        """Where the learner lives (its token buffers move with its parameters)."""
        return self.tokens().device

    def _single_token_id(self, word: str) -> int:
        ids = self.backbone.tokenize(word)[0]
        ids = ids[(ids != 0) & (ids != ids.max())]  # drop SOT/EOT padding
        ids = ids[1:] if ids.numel() > 1 else ids
        if ids.numel() != 1:
            raise ConfigError(f"placeholder {word!r} must be a single CLIP token")
        return int(ids[0])

    def add_template(self, name: str, text: str) -> None:
        """Register a template; its X/Y slot counts must match the learner's (or be zero)."""
        tokens = self.backbone.tokenize(text)  # (1, 77)
        if int(tokens[0, -1]) != 0:
            raise ConfigError(f"prompt template {text!r} is longer than CLIP's {self.backbone.context_length} tokens")
        x_pos = (tokens[0] == self._class_id).nonzero().flatten()
        y_pos = (tokens[0] == self._context_id).nonzero().flatten()
        for kind, pos, attr in (("identity (X)", x_pos, "n_x"), ("context (Y)", y_pos, "n_y")):
            count = int(pos.numel())
            have = getattr(self, attr)
            if count and have not in (None, 0) and have != count:
                raise ConfigError(f"prompt template {text!r} has {count} {kind} tokens; this learner has {have}")
        if x_pos.numel() and self.cls_ctx is None:
            self.n_x = int(x_pos.numel())
            self.cls_ctx = nn.Parameter(torch.randn(self.num_classes, self.n_x, self.text_width) * self.init_std)
        if y_pos.numel() and self.ctx is None:
            self.n_y = int(y_pos.numel())
            self.ctx = nn.Parameter(torch.randn(self.n_y, self.text_width) * self.init_std)
        self.templates[name] = text
        self.register_buffer(f"_tokens_{name}", tokens, persistent=False)
        self.register_buffer(f"_xpos_{name}", x_pos, persistent=False)
        self.register_buffer(f"_ypos_{name}", y_pos, persistent=False)

    def tokens(self, template: str = "default") -> torch.Tensor:
        if template not in self.templates:
            raise ConfigError(f"unknown prompt template {template!r}; have {sorted(self.templates)}")
        return getattr(self, f"_tokens_{template}")

    def forward(
        self,
        labels: torch.Tensor | None = None,
        template: str = "default",
        cls_offset: torch.Tensor | None = None,
        ctx_offset: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.tokens(template)
        x_pos = getattr(self, f"_xpos_{template}")
        y_pos = getattr(self, f"_ypos_{template}")
        if x_pos.numel() and labels is None:
            raise ConfigError(f"prompt template {self.templates[template]!r} has identity tokens: labels are required")
        if labels is not None:
            n = labels.shape[0]
        elif ctx_offset is not None and ctx_offset.dim() >= 2:
            n = ctx_offset.shape[0]
        else:
            n = 1
        base = self.backbone.token_embedding(tokens)  # (1, L, W)
        emb = base.expand(n, -1, -1)
        if x_pos.numel() or y_pos.numel():
            emb = emb.clone()
        if x_pos.numel():
            # add_template made cls_ctx for a template with X tokens; labels were required above
            assert self.cls_ctx is not None and labels is not None
            labels = labels.to(self.cls_ctx.device).long()
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ConfigError(f"identity label out of range [0, {self.num_classes}) for the prompt learner")
            cls = self.cls_ctx[labels].to(emb.dtype)  # (N, n_x, W)
            if cls_offset is not None:
                cls = cls + (cls_offset.unsqueeze(1) if cls_offset.dim() == 2 else cls_offset).to(emb.dtype)
            emb[:, x_pos] = cls
        if y_pos.numel():
            assert self.ctx is not None  # add_template made it for a template with Y tokens
            ctx = self.ctx.to(emb.dtype).unsqueeze(0).expand(n, -1, -1)
            if ctx_offset is not None:
                off = ctx_offset.unsqueeze(1) if ctx_offset.dim() == 2 else ctx_offset
                ctx = ctx + off.to(emb.dtype)
            emb[:, y_pos] = ctx
        eot = tokens.argmax(dim=-1).expand(n)
        return emb, eot

    def encode(
        self,
        labels: torch.Tensor | None = None,
        template: str = "default",
        cls_offset: torch.Tensor | None = None,
        ctx_offset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Text features (N, proj_dim) of the prompts of ``labels``."""
        emb, eot = self(labels, template, cls_offset=cls_offset, ctx_offset=ctx_offset)
        return TextEncoder(self.backbone)(emb, eot)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, identity_tokens={self.n_x or 0}, "
            f"context_tokens={self.n_y or 0}, templates={self.templates}"
        )
