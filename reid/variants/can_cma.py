"""``can_cma`` — CLIP-ReID + Context Adjustment Network + Cross-Modal Attention (paper 001: 贾军营 et al.,
"改进 CLIP-ReID 的跨模态行人重识别" / "Cross-modal person re-identification based on improved CLIP-ReID",
计算机系统应用 34(1), 2025), on CLIP ViT-B/16 at 384x192.

Built on the ``clipreid`` baseline (:class:`reidpipe.reid.variants.clipreid.CLIPReID`, subclassed).

Modules (paper section -> where it lives):

- CLIP-ReID with the ViT-B/16 image encoder, inputs 384x192, ImageNet mean/std (§2.1, §3.2) ->
  :class:`~reidpipe.reid.variants.clipreid.CLIPReID`, :mod:`reidpipe.reid.backbones.clip`.
- Prompt "[Y]1[Y]2…[Y]n person." with n = 8 learnable tokens at the start (§2.1, Table 4: start
  position and n = 8 are best) -> :class:`~reidpipe.reid.modules.prompt.PromptLearner` with the
  template ``"X X X X X X X X person."``. The tokens are **identity-specific** (one set of n per
  identity, as CLIP-ReID's): the paper's losses need one text per identity — T_{Z_i} in L_T2I (Eq. 3,
  "one ID has the same text description") and t_k for every class k in L_I2Tce (Eq. 7) — which shared
  (CoOp-style) tokens could not give.
- Context Adjustment Network (§2.2) -> :class:`~reidpipe.reid.modules.can.ContextAdjustmentNet`:
  M = Linear(1024→512)(ReLU(Linear(512→1024)(I_f))) with I_f the image feature (CLS @ proj, 512-d),
  and every context token of the image's prompt becomes C_n = Y_n + M.
- Cross-Modal Attention (§2.3, Eq. 1) -> :class:`~reidpipe.reid.modules.cma.CrossModalAttention`:
  image tokens (CLS + patches, ln_post and CLIP's projection, 512-d) and the identity text features
  are each projected by a linear layer and self-attended; O = W_o(softmax((W_i A_i)(W_t A_t)ᵀ)·W_t A_t
  + W_i A_i) + b_o at the class-token position, 8 heads, hidden width 512.

Where CMA's output is used: the paper says the fused output features "are then used in the similarity
computation that evaluates how well images and texts match" (§2.3), and the stage-2 loss that computes
that similarity is L_I2Tce (Eq. 7). So ``i2t_logits[n, k] = <O_n, t_k>`` with O_n the CMA output of
image n against all identity texts t_k. CMA trains in stage 2 (stage 1 optimises only the context
vectors and CAN, §2.4). The paper says nothing of CMA at inference; test identities have no learnt
text, so ``embed`` is CLIP-ReID's image-only feature (CLS after ln_post ‖ CLS @ proj, 1280-d,
L2-normalised) and CMA and CAN add no inference cost.

Where CAN's image feature comes from: in stage 1 each prompt is conditioned on its own image
(I_f = the frozen encoder's projected feature of that image). Stage 2 needs the text features of every
identity (L_I2Tce over all C classes) once, before training the image encoder, as CLIP-ReID computes
them; conditioning every identity's prompt on every image would need C×N text-encoder passes per
batch, so each identity's prompt is conditioned on the **mean stage-1 image feature of that identity**
(buffers ``class_feature_sum`` / ``class_feature_count``, accumulated during stage-1 training and
saved in checkpoints; an identity never seen gets M = 0).

Stages:

``prompt`` — image and text encoders frozen; the identity context tokens and CAN train; losses
L_I2T + L_T2I (Eq. 4), CLIP-ReID's contrastive pair.
``image`` — the identity text features are computed once (frozen); the image encoder, the BN necks,
the classifiers and CMA train; losses L_ID + L_Tri + L_I2Tce (Eq. 8; label smoothing in L_ID and
L_I2Tce; all weights 1 as Eq. 8 writes them — CLIP-ReID's ViT code weights L_ID by 0.25, a config
override away).

Extra outputs beyond ``clipreid``'s: in stage ``image`` with CMA on, ``cma_features`` (N, 512), the
CMA output that feeds ``i2t_logits``; in stage ``prompt`` with CAN on, ``context_offsets`` (N, 512),
the CAN outputs M.

Training recipe (§3.2): inputs 384x192, ImageNet mean/std, one RTX 3090. Stage 1: Adam, batch 64,
lr 3.5e-4 with cosine annealing, linear warm-up over the first 10 epochs, minimum lr 1e-6, weight
decay 1e-4, 120 epochs, automatic mixed precision and gradient scaling (§2.4). Stage 2: Adam, batch 64,
lr 5e-6, 60 epochs, ×0.1 at epochs 30 and 50. Other CLIP-ReID settings (PK sampling 16×4, triplet
margin 0.3, label smoothing 0.1) are not restated by the paper and follow CLIP-ReID.

Parameters (full size, ``pretrained=False``, 1041 identities): 159.75 M (134.46 M without CLIP's
25.30 M token-embedding table); CAN 1.05 M, CMA 3.41 M. The paper gives no count.

Options (``create_model("can_cma", ..., **options)``; Table 3 and Table 4 ablations): ``use_can``
(True), ``use_cma`` (True), ``n_ctx`` (8), ``prompt_position`` ("start" = "X… person.", "middle" =
"A photo of X… person.", "end" = "A photo of a person, X…."), ``prompt_template`` (an explicit
template with X placeholders, overrides the two before), ``can_expansion`` (2), ``cma_heads`` (8),
``cma_hidden`` (the projection width: 512), ``cma_image_input`` ("tokens" | "global"),
``cma_scaled`` (False: Eq. 1's unscaled softmax), ``backbone`` ("ViT-B-16"; "RN50" allowed),
``stride_size`` (16), ``neck_feat``, ``tiny``, ``input_size`` (384x192; 64x32 when tiny).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from reidpipe.errors import ConfigError
from reidpipe.reid.modules.can import ContextAdjustmentNet
from reidpipe.reid.modules.cma import CrossModalAttention
from reidpipe.reid.output import ReIDOutput
from reidpipe.reid.registry import register_variant
from reidpipe.reid.variants.clipreid import IMAGENET_MEAN, IMAGENET_STD, CLIPReID

__all__ = ["CANCMA", "prompt_template_for"]

PROMPT_POSITIONS = {
    "start": "{ctx} person.",
    "middle": "A photo of {ctx} person.",
    "end": "A photo of a person, {ctx}.",
}
CMA_IMAGE_INPUTS = ("tokens", "global")


def prompt_template_for(n_ctx: int = 8, position: str = "start") -> str:
    """The paper's Table 4 text initialisations with ``n_ctx`` identity tokens ``X``."""
    if position not in PROMPT_POSITIONS:
        raise ConfigError(f"prompt_position={position!r}: expected one of {list(PROMPT_POSITIONS)}")
    n_ctx = int(n_ctx)
    if not 1 <= n_ctx <= 60:
        raise ConfigError(f"n_ctx={n_ctx}: expected 1..60 learnable tokens")
    return PROMPT_POSITIONS[position].format(ctx=" ".join(["X"] * n_ctx))


class CANCMA(CLIPReID):
    """CLIP-ReID (ViT-B/16, 384x192) + CAN + CMA; see the module docstring."""

    variant = "can_cma"
    PROMPT_STAGE_PREFIXES: tuple[str, ...] = ("prompt_learner.", "can.")
    IMAGE_STAGE_FROZEN_PREFIXES: ClassVar[tuple[str, ...]] = ("prompt_learner.", "can.")
    #: Eq. (8): L_stage2 = L_ID + L_Tri + L_I2Tce, every term with weight 1.
    ID_LOSS_WEIGHT: ClassVar[dict[str, float]] = {"RN50": 1.0, "ViT-B-16": 1.0}

    def __init__(
        self,
        *,
        num_classes: int,
        pretrained: bool | str = True,
        tiny: bool = False,
        input_size: tuple[int, int] | None = None,
        backbone: str = "ViT-B-16",
        stride_size: int = 16,
        neck_feat: str = "before",
        n_ctx: int = 8,
        prompt_position: str = "start",
        prompt_template: str | None = None,
        use_can: bool = True,
        can_expansion: int = 2,
        use_cma: bool = True,
        cma_heads: int = 8,
        cma_hidden: int | None = None,
        cma_image_input: str = "tokens",
        cma_scaled: bool = False,
    ):
        if cma_image_input not in CMA_IMAGE_INPUTS:
            raise ConfigError(f"cma_image_input={cma_image_input!r}: expected one of {list(CMA_IMAGE_INPUTS)}")
        template = prompt_template or prompt_template_for(n_ctx, prompt_position)
        if input_size is None:
            input_size = (64, 32) if tiny else (384, 192)
        super().__init__(
            num_classes=num_classes,
            backbone=backbone,
            pretrained=pretrained,
            tiny=tiny,
            input_size=input_size,
            stride_size=stride_size,
            neck_feat=neck_feat,
            prompt_template=template,
        )
        if self.prompt_learner.n_x is None:
            raise ConfigError(f"prompt_template={template!r} has no identity tokens 'X'")
        # §3.2: "use ImageNet's mean and standard deviation"
        self.pixel_mean, self.pixel_std = tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)
        bb = self.backbone
        if cma_image_input == "tokens" and not bb.is_vit:
            raise ConfigError("cma_image_input='tokens' needs a ViT backbone; use 'global' with RN50")
        self.can = ContextAdjustmentNet(bb.proj_dim, bb.text_width, expansion=can_expansion) if use_can else None
        hidden = int(cma_hidden) if cma_hidden else bb.proj_dim
        if hidden % int(cma_heads):
            raise ConfigError(f"cma_hidden={hidden} is not divisible by cma_heads={cma_heads}")
        self.cma = CrossModalAttention(bb.proj_dim, hidden, heads=cma_heads, scaled=cma_scaled) if use_cma else None
        self.cma_image_input = cma_image_input
        self.class_feature_sum: torch.Tensor  # buffers: per-identity sum and count of image features
        self.class_feature_count: torch.Tensor
        self.register_buffer("class_feature_sum", torch.zeros(num_classes, bb.proj_dim))
        self.register_buffer("class_feature_count", torch.zeros(num_classes))

    # ------------------------------------------------------------------ CAN: image-conditioned prompts
    def text_features_for(self, labels: torch.Tensor, enc: dict[str, Any] | None = None) -> torch.Tensor:
        if self.can is None:
            return self.prompt_learner.encode(labels)
        if enc is not None:
            offset = self.can(enc["proj"].to(self.class_feature_sum.dtype))
            enc["context_offsets"] = offset
        else:
            labels = labels.to(self.class_feature_sum.device).long()
            count = self.class_feature_count[labels].unsqueeze(1)
            mean = self.class_feature_sum[labels] / count.clamp(min=1.0)
            offset = self.can(mean) * (count > 0).to(mean.dtype)
        return self.prompt_learner.encode(labels, cls_offset=offset)

    @torch.no_grad()
    def _accumulate_class_features(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        labels = labels.to(self.class_feature_sum.device).long()
        self.class_feature_sum.index_add_(0, labels, feats.detach().to(self.class_feature_sum.dtype))
        ones = torch.ones_like(labels, dtype=self.class_feature_count.dtype)
        self.class_feature_count.index_add_(0, labels, ones)

    # ------------------------------------------------------------------ CMA in the stage-2 i2t loss
    def cma_image_tokens(self, enc: dict[str, Any]) -> torch.Tensor:
        if self.cma_image_input == "global":
            return enc["proj"]
        tokens = torch.cat([enc["global"].unsqueeze(1), enc["map"].flatten(2).transpose(1, 2)], dim=1)
        return self.backbone.project(tokens)  # (N, 1 + h*w, proj_dim)

    def image_text_logits(self, enc: dict[str, Any], text_features: torch.Tensor) -> torch.Tensor:
        if self.cma is None:
            return super().image_text_logits(enc, text_features)
        text = text_features.to(enc["proj"].dtype)
        fused = self.cma(self.cma_image_tokens(enc), text)  # O, (N, proj_dim)
        enc["cma_features"] = fused
        return fused @ text.t()

    def extra_outputs(self, enc: dict[str, Any], out: ReIDOutput, labels: torch.Tensor | None) -> None:
        if "cma_features" in enc:
            out.extras["cma_features"] = enc["cma_features"]
        if "context_offsets" in enc:
            out.extras["context_offsets"] = enc["context_offsets"]
        if self.stage == "prompt" and self.training and labels is not None and self.can is not None:
            self._accumulate_class_features(enc["proj"], labels)


register_variant(
    "can_cma",
    CANCMA,
    "CLIP-ReID ViT-B/16 (384x192) + Context Adjustment Network (512-1024-512) + Cross-Modal Attention",
)
