"""``mscsa_tgi`` — CLIP-ReID + Multistage Channel-Spatial Aggregation + Text-Guided Image module
(paper 000: "fusing visual and textual information" on CLIP-ReID with CLIP RN50).

Built on the ``clipreid`` baseline (:class:`reidpipe.reid.variants.clipreid.CLIPReID`, subclassed; its
image encoder, prompt learner, text encoder, BN necks and classifiers are reused as they are).

Modules (paper section -> where it lives):

- CLIP-ReID, CLIP RN50 image encoder with last stride 1, 256x128 input (§3.1) ->
  :class:`~reidpipe.reid.variants.clipreid.CLIPReID`, :mod:`reidpipe.reid.backbones.clip`.
- Learnable identity prompts "A photo of a X X X X person." (§3.1, stage 1) ->
  :class:`~reidpipe.reid.modules.prompt.PromptLearner`.
- MSCSA blocks after ResNet stages 1, 2, 3 (§3.3, §4.2) -> :class:`~reidpipe.reid.modules.mscsa.MSCSA`
  (one :class:`~reidpipe.reid.modules.mscsa.MSCSABlock` per stage: low = the stage's input, high = its
  output; the aggregated map replaces the stage output and feeds the next stage). Strides of the
  low-level convolutions 1, 2, 2 (§4.2). Channel step as the paper's text; the spatial step's formula
  was lost in extraction — see that module's docstring for the standard form used and its switches.
- TGI, a 3-layer, 4-head, width-256 transformer decoder (§3.4, §4.2) ->
  :class:`~reidpipe.reid.modules.tgi.TextGuidedDecoder`: queries = the stage-1 identity text features
  (frozen, all identities), keys/values = the stage-3 visual tokens after MSCSA; fused text
  ``t + γ·decoder(t, v)`` with γ initialised to 1e-4 (DenseCLIP, the paper's model; the paper's value
  was lost). The fused, per-image text features replace the plain text features in the stage-2
  image-to-text cross-entropy: ``i2t_logits[n, k] = <image_features_proj[n], t_fused[n, k]>``.

Stages (as the paper trains them, Fig. 1):

``prompt``
    Image and text encoders frozen. The prompt tokens train, and so do the MSCSA blocks (paper §3.2:
    "keep the parameters of the text encoder and image encoder constant while introducing MSCSA ...
    to generate more accurate ... text descriptions"; a newly initialised, frozen MSCSA could not do
    that, so we read it as trainable; ``mscsa_train_prompt=False`` freezes it in this stage).
    Losses: image-to-text + text-to-image contrastive (CLIP-ReID).
``image``
    The identity text features are computed once and frozen; the image encoder (with MSCSA), the BN
    necks, the classifiers and the TGI decoder train. Losses: CLIP-ReID's ID (label smoothing) +
    triplet + image-to-text cross-entropy, the latter on the TGI-fused text features.

Inference (``embed``): CLIP-ReID's test feature (GAP of layer4 ‖ attention-pool projection, 3072-d,
L2-normalised) with the MSCSA blocks in the encoder; TGI needs text and is not used at inference.

Extra outputs beyond ``clipreid``'s: ``stage_maps`` (the four stage maps after MSCSA) and, in stage
``image`` with TGI on, ``tgi_text_features`` (N, C, proj_dim) — the fused text features.

Options (``create_model("mscsa_tgi", ..., **options)``; the paper's ablations, Tables 3 and 4):
``use_mscsa`` (True), ``mscsa_stages`` ((1, 2, 3); e.g. (1,), (1, 2), (1, 2, 3, 4)), ``use_tgi`` (True),
``mscsa_reduction`` (2), ``mscsa_spatial_reduction`` (8), ``mscsa_spatial_value`` ("high" | "low"),
``mscsa_scaled`` (False), ``mscsa_res_scale_init`` (None), ``mscsa_train_prompt`` (True),
``tgi_layers`` (3), ``tgi_heads`` (4), ``tgi_width`` (256; 32 when tiny), ``tgi_gamma_init`` (1e-4),
``tgi_dropout`` (0.1), and ``clipreid``'s ``neck_feat``, ``prompt_template``, ``tiny``, ``input_size``.

Training recipe: the paper "maintained consistency with CLIP-ReID" (§4.2: training strategies,
parameter settings and hyper-parameters of CLIP-ReID) on two RTX A6000s; the run configs use CLIP-ReID's
RN50 person recipe (configs/variants/mscsa_tgi.yaml). Paper figures: 100.70 M parameters, ~7.7 ms per
image at inference. This implementation, full size with ``pretrained=False`` and 1041 identities
(MSMT17): 113.77 M parameters, of which 25.30 M are CLIP's token-embedding table (88.47 M without
it); MSCSA 2.31 M, TGI 3.95 M; the gap to 100.70 M is discussed in /work/notes/variants_mscsa_can.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch

from reidpipe.errors import ConfigError
from reidpipe.reid.modules.mscsa import MSCSA, SPATIAL_VALUES
from reidpipe.reid.modules.prompt import CLIPREID_TEMPLATE
from reidpipe.reid.modules.tgi import TextGuidedDecoder
from reidpipe.reid.output import ReIDOutput
from reidpipe.reid.registry import register_variant
from reidpipe.reid.variants.clipreid import CLIPReID

__all__ = ["MSCSATGI"]


class MSCSATGI(CLIPReID):
    """CLIP-ReID (RN50) + MSCSA after stages 1-3 + TGI decoder; see the module docstring."""

    variant = "mscsa_tgi"
    IMAGE_STAGE_FROZEN_PREFIXES = ("prompt_learner.",)

    def __init__(
        self,
        *,
        num_classes: int,
        pretrained: bool | str = True,
        tiny: bool = False,
        input_size: tuple[int, int] | None = None,
        neck_feat: str = "before",
        prompt_template: str = CLIPREID_TEMPLATE,
        use_mscsa: bool = True,
        mscsa_stages: Sequence[int] = (1, 2, 3),
        mscsa_reduction: int = 2,
        mscsa_spatial_reduction: int = 8,
        mscsa_spatial_value: str = "high",
        mscsa_scaled: bool = False,
        mscsa_res_scale_init: float | None = None,
        mscsa_train_prompt: bool = True,
        use_tgi: bool = True,
        tgi_layers: int = 3,
        tgi_heads: int = 4,
        tgi_width: int | None = None,
        tgi_gamma_init: float = 1e-4,
        tgi_dropout: float = 0.1,
    ):
        super().__init__(
            num_classes=num_classes,
            backbone="RN50",
            pretrained=pretrained,
            tiny=tiny,
            input_size=input_size,
            neck_feat=neck_feat,
            prompt_template=prompt_template,
        )
        if mscsa_spatial_value not in SPATIAL_VALUES:
            raise ConfigError(f"mscsa_spatial_value={mscsa_spatial_value!r}: expected one of {list(SPATIAL_VALUES)}")
        bb = self.backbone
        # (low channels, high channels, stride) of a block after each stage, read off the built backbone:
        # stage input channels, stage output channels, the stage's downsampling (1, 2, 2, 1 in CLIP RN50
        # with last stride 1)
        geometry = {
            i + 1: (int(stage[0].conv1.in_channels), int(bb.stage_dims[i]), int(stage[0].stride))
            for i, stage in enumerate(cast("list[Any]", bb.stages))
        }  # open_clip Bottlenecks
        stages = tuple(mscsa_stages) if mscsa_stages is not None else ()
        self.mscsa = (
            MSCSA(
                stages,
                geometry=geometry,
                reduction=mscsa_reduction,
                spatial_reduction=mscsa_spatial_reduction,
                spatial_value=mscsa_spatial_value,
                scaled=mscsa_scaled,
                res_scale_init=mscsa_res_scale_init,
            )
            if use_mscsa and stages
            else None
        )
        self.mscsa_train_prompt = bool(mscsa_train_prompt)
        if self.mscsa is not None and self.mscsa_train_prompt:
            self.PROMPT_STAGE_PREFIXES = ("prompt_learner.", "mscsa.")
        width = tgi_width if tgi_width is not None else (32 if tiny else 256)
        self.tgi = (
            TextGuidedDecoder(
                bb.proj_dim,
                bb.stage_dims[2],
                width=width,
                heads=tgi_heads,
                layers=tgi_layers,
                dropout=tgi_dropout,
                gamma_init=tgi_gamma_init,
            )
            if use_tgi
            else None
        )

    # ------------------------------------------------------------------ image encoder with MSCSA
    def encode_image_stages(self, images: torch.Tensor, return_stages: bool = False) -> dict[str, Any]:
        bb = self.backbone
        # in stage "prompt" the baseline runs the frozen encoder under no_grad; the MSCSA blocks train
        # there, so gradients are re-enabled from the first MSCSA block on while training
        outer = torch.is_grad_enabled()
        reopen = (
            not outer
            and self.stage == "prompt"
            and self.mscsa is not None
            and self.mscsa_train_prompt
            and self.mscsa.training
        )
        first = self.mscsa.stages[0] if reopen and self.mscsa is not None else 0
        with torch.set_grad_enabled(outer):
            x = bb.stem(images)
        maps = []
        for i, stage in enumerate(bb.stages, start=1):
            with torch.set_grad_enabled(outer or (reopen and i >= first)):
                y = stage(x)
                if self.mscsa is not None:
                    y = self.mscsa(i, x, y)
            maps.append(y)
            x = y
        with torch.set_grad_enabled(outer or reopen):
            proj = bb.pool(x)
        return {"last": maps[-2].mean(dim=(2, 3)), "global": x.mean(dim=(2, 3)), "proj": proj, "map": x, "stages": maps}

    # ------------------------------------------------------------------ TGI in the stage-2 i2t loss
    def image_text_logits(self, enc: dict[str, Any], text_features: torch.Tensor) -> torch.Tensor:
        if self.tgi is None:
            return super().image_text_logits(enc, text_features)
        proj = enc["proj"]
        fused = self.tgi(text_features.to(proj.dtype), enc["stages"][2])  # (N, C, proj_dim)
        enc["tgi_text_features"] = fused
        return torch.einsum("nd,nkd->nk", proj, fused)

    def extra_outputs(self, enc: dict[str, Any], out: ReIDOutput, labels: torch.Tensor | None) -> None:
        out.extras["stage_maps"] = enc["stages"]
        if "tgi_text_features" in enc:
            out.extras["tgi_text_features"] = enc["tgi_text_features"]


register_variant(
    "mscsa_tgi",
    MSCSATGI,
    "CLIP-ReID RN50 + MSCSA after stages 1-3 + TGI transformer decoder (3 layers, 4 heads, width 256)",
)
