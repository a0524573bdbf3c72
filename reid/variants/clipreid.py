"""``clipreid`` — the CLIP-ReID baseline (Li, Sun, Li: "CLIP-ReID: Exploiting Vision-Language Model for
Image Re-identification without Concrete Text Labels", AAAI 2023), on CLIP RN50 or ViT-B/16.

Architecture (``backbone="RN50"`` default, or ``"ViT-B-16"``):

- image encoder: CLIP's, adapted to ReID inputs (``reid/backbones/clip.py``: RN50 last stride 1 and
  attention-pool positional embedding resized; ViT positional embedding resized to the patch grid);
  default input 256x128.
- text encoder: CLIP's, frozen in both stages.
- prompt learner: ``"A photo of a X X X X person."`` with 4 learnable class-specific tokens per
  identity (``reid/modules/prompt.py``).
- BN necks: ``bottleneck`` on the pre-projection feature and ``bottleneck_proj`` on the projected one
  (BNNeck, bias frozen), each followed by a bias-free ID classifier (``classifier``,
  ``classifier_proj``; N(0, 0.001) init), as CLIP-ReID does.

Stages (``STAGES = ("prompt", "image")``; the engine runs them in order):

``prompt``
    Image and text encoders frozen; only ``prompt_learner`` trains. ``forward`` runs the image
    encoder without gradients (and in eval mode: a frozen encoder's BatchNorm statistics do not move)
    and, when ``labels`` are given, the text features of those identities' prompts. Default losses:
    ``i2t_contrastive`` + ``t2i_contrastive`` (weights 1, 1).
``image``
    The text features of ALL identities are computed once from the (now frozen) prompt learner and
    cached (recomputed after ``set_stage`` or ``load_state_dict``) and used as a classifier; the image
    encoder, the BN necks and the ID classifiers train. Default losses: ``id`` (label smoothing 0.1)
    summed over both classifiers, ``triplet`` (margin 0.3) summed over [last, global, proj] features,
    and ``i2t_ce`` (label smoothing 0.1) on ``i2t_logits`` — CLIP-ReID's weights: ID 1.0 for RN50 and
    0.25 for ViT-B/16, triplet 1.0, image-to-text 1.0.

Output of ``forward`` (``ReIDOutput``): ``features`` = the pre-projection global feature
(``image_features``); ``logits`` = ``classifier(bn_features)`` in stage ``image`` (None in
``prompt``). ``extras``:

==========================  ===============================================================  =======
key                         meaning                                                          stages
==========================  ===============================================================  =======
``image_features``          (N, feature_dim) RN50: GAP of layer4 (2048); ViT: ln_post(CLS)    both
``image_features_last``     (N, last_dim) RN50: GAP of layer3; ViT: CLS after block L-1       both
``image_features_proj``     (N, proj_dim) RN50: attention pool (1024); ViT: CLS @ proj (512)  both
``text_features``           (N, proj_dim) text features of the batch's identities             prompt
``text_labels``             (N,) identities of the rows of ``text_features``                  prompt
``bn_features``             BNNeck(image_features)                                            image
``bn_features_proj``        BNNeck_proj(image_features_proj)                                  image
``logits_proj``             classifier_proj(bn_features_proj)                                 image
``id_logits``               [logits, logits_proj] (the ID loss's input)                       image
``triplet_features``        [image_features_last, image_features, image_features_proj]        image
``class_text_features``     (C, proj_dim) cached text features of every identity              image
``i2t_logits``              (N, C) image_features_proj @ class_text_features.T                image
==========================  ===============================================================  =======

Stage ``prompt`` shortcut (CLIP-ReID's): the image encoder is frozen, so an engine may encode the
training set once (``model.encode_image_stages(images)`` under ``torch.no_grad()``, in eval mode) and
call ``model(None, labels, image_encoding=enc)`` with the batch's rows of ``last``/``global``/``proj``;
the output is the same as with the images (no augmentation then, as in CLIP-ReID).

``embed(images)`` (call ``model.eval()`` first) returns CLIP-ReID's test feature, L2-normalised:
``cat([image_features, image_features_proj])`` (``neck_feat="before"``, CLIP-ReID's person configs:
3072-d for RN50, 1280-d for ViT-B/16) or the BN features ``cat([bn_features, bn_features_proj])``
with ``neck_feat="after"``.

Extending (``mscsa_tgi``, ``can_cma``, ``pivl`` subclass this class rather than copy it); hooks:

- ``encode_image_stages(images, return_stages=False) -> dict``: the image encoder; returns the
  ``CLIPBackbone.encode_image`` dict (``last``, ``global``, ``proj``, ``map``, ``stages``). Override
  to insert modules between stages (use ``self.backbone.stem`` / ``.stages`` / ``.pool``).
- ``text_features_for(labels, enc=None) -> (N, proj_dim)``: text features of identities; ``enc`` is
  the image encoding of the batch (for image-conditioned prompts).
- ``class_text_features() -> (C, proj_dim)``: the cached all-identity text features of stage
  ``image`` (built with ``compute_class_text_features``); ``invalidate_text_cache()`` drops it.
- ``image_text_logits(enc, text_features) -> (N, C)``: the stage-2 image-to-text logits (override to
  fuse text with visual features, e.g. TGI).
- ``extra_outputs(enc, out, labels) -> None``: add variant-specific extras in place.
- ``embed_features(enc) -> (N, D)``: the un-normalised test feature.
- Class attributes ``PROMPT_STAGE_PREFIXES`` (parameter-name prefixes that train in stage ``prompt``)
  and ``IMAGE_STAGE_FROZEN_PREFIXES`` (those that do not train in stage ``image``); new modules of a
  subclass train in stage ``image`` unless listed.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from reidpipe.errors import ConfigError
from reidpipe.reid.backbones.clip import ARCHS, build_clip
from reidpipe.reid.base import ReIDModel
from reidpipe.reid.modules.prompt import CLIPREID_TEMPLATE, PromptLearner
from reidpipe.reid.output import ReIDOutput
from reidpipe.reid.registry import register_variant

__all__ = ["CLIPReID", "build_clipreid", "default_input_size", "clipreid_normalisation", "bnneck"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_input_size(tiny: bool) -> tuple[int, int]:
    return (64, 32) if tiny else (256, 128)


def clipreid_normalisation(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """CLIP-ReID's person configs: ImageNet mean/std for RN50, 0.5/0.5 for ViT-B/16."""
    if backbone == "RN50":
        return IMAGENET_MEAN, IMAGENET_STD
    return (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def bnneck(dim: int) -> nn.BatchNorm1d:
    """BNNeck (Luo et al. 2019): BatchNorm1d with weight 1, bias 0 and the bias frozen."""
    bn = nn.BatchNorm1d(dim)
    nn.init.ones_(bn.weight)
    nn.init.zeros_(bn.bias)
    bn.bias.requires_grad_(False)
    return bn


def id_classifier(dim: int, num_classes: int) -> nn.Linear:
    fc = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(fc.weight, std=0.001)
    return fc


class CLIPReID(ReIDModel):
    variant = "clipreid"
    STAGES: ClassVar[tuple[str, ...]] = ("prompt", "image")
    DEFAULT_LOSSES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {
        "prompt": {
            "i2t_contrastive": {"weight": 1.0},
            "t2i_contrastive": {"weight": 1.0},
        },
        "image": {
            "id": {"weight": 1.0, "input": "id_logits", "epsilon": 0.1, "reduce": "sum"},
            "triplet": {"weight": 1.0, "input": "triplet_features", "margin": 0.3, "reduce": "sum"},
            "i2t_ce": {"weight": 1.0, "input": "i2t_logits", "epsilon": 0.1},
        },
    }
    #: ID-loss weight of stage "image" per backbone (CLIP-ReID configs/person/*_clipreid.yml).
    ID_LOSS_WEIGHT: ClassVar[dict[str, float]] = {"RN50": 1.0, "ViT-B-16": 0.25}
    PROMPT_STAGE_PREFIXES: tuple[str, ...] = ("prompt_learner.",)
    IMAGE_STAGE_FROZEN_PREFIXES: ClassVar[tuple[str, ...]] = ("prompt_learner.",)
    TEXT_CHUNK = 64

    def __init__(
        self,
        *,
        num_classes: int,
        backbone: str = "RN50",
        pretrained: bool | str = True,
        tiny: bool = False,
        input_size: tuple[int, int] | None = None,
        stride_size: int = 16,
        neck_feat: str = "before",
        prompt_template: str = CLIPREID_TEMPLATE,
        build_kwargs: dict[str, Any] | None = None,
    ):
        if backbone not in ARCHS:
            raise ConfigError(f"{self.variant}: backbone must be one of {', '.join(ARCHS)}, got {backbone!r}")
        if neck_feat not in ("before", "after"):
            raise ConfigError(f"{self.variant}: neck_feat must be 'before' or 'after', got {neck_feat!r}")
        input_size = cast("tuple[int, int]", tuple(input_size)) if input_size is not None else default_input_size(tiny)
        clip = build_clip(backbone, input_size=input_size, pretrained=pretrained, tiny=tiny, stride_size=stride_size)
        mean, std = clipreid_normalisation(backbone)
        embed_dim = clip.feature_dim + clip.proj_dim
        super().__init__(
            num_classes=num_classes,
            input_size=input_size,
            pixel_mean=mean,
            pixel_std=std,
            embed_dim=embed_dim,
            build_kwargs=build_kwargs,
        )
        self.arch = backbone
        self.neck_feat = neck_feat
        self.backbone = clip
        self.prompt_learner = PromptLearner(clip, num_classes, prompt_template)
        self.bottleneck = bnneck(clip.feature_dim)
        self.bottleneck_proj = bnneck(clip.proj_dim)
        self.classifier = id_classifier(clip.feature_dim, num_classes)
        self.classifier_proj = id_classifier(clip.proj_dim, num_classes)
        self.feature_dims = {
            "features": clip.feature_dim,
            "image_features": clip.feature_dim,
            "image_features_last": clip.last_dim,
            "image_features_proj": clip.proj_dim,
            "bn_features": clip.feature_dim,
            "bn_features_proj": clip.proj_dim,
            "text_features": clip.proj_dim,
        }
        self._text_cache: torch.Tensor | None = None
        self._text_param_names = {name for name, _ in clip.text_parameters()}

    # ------------------------------------------------------------------ stages and parameters
    def set_stage(self, name: str) -> None:
        super().set_stage(name)
        self.invalidate_text_cache()
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.stage == "prompt":
            self.backbone.eval()  # frozen encoders: BatchNorm statistics stay as loaded
        return self

    def trainable_parameters(self, name: str) -> list[tuple[str, nn.Parameter]]:
        if name not in self.STAGES:
            raise ConfigError(f"{self.variant}: unknown stage {name!r}; this model has stages {list(self.STAGES)}")
        params = []
        for pname, p in self.named_parameters():
            if name == "prompt":
                if pname.startswith(self.PROMPT_STAGE_PREFIXES):
                    params.append((pname, p))
                continue
            if pname.startswith(self.IMAGE_STAGE_FROZEN_PREFIXES) or self._is_text_or_unused(pname):
                continue
            if pname.endswith(".bias") and pname.rsplit(".", 1)[0] in ("bottleneck", "bottleneck_proj"):
                continue  # BNNeck bias is frozen
            params.append((pname, p))
        return params

    def _is_text_or_unused(self, pname: str) -> bool:
        if not pname.startswith("backbone."):
            return False
        inner = pname[len("backbone.") :]
        return inner in self._text_param_names or inner in ("clip.logit_scale", "clip.logit_bias")

    def default_losses(self, stage: str | None = None) -> dict[str, dict[str, Any]]:
        cfg = super().default_losses(stage)
        if "id" in cfg:
            cfg["id"]["weight"] = self.ID_LOSS_WEIGHT.get(self.arch, cfg["id"]["weight"])
        return cfg

    # ------------------------------------------------------------------ hooks
    def encode_image_stages(self, images: torch.Tensor, return_stages: bool = False) -> dict[str, Any]:
        return self.backbone.encode_image(images, return_stages=return_stages)

    def text_features_for(self, labels: torch.Tensor, enc: dict[str, Any] | None = None) -> torch.Tensor:
        return self.prompt_learner.encode(labels)

    def compute_class_text_features(self) -> torch.Tensor:
        """Text features of every identity, computed in chunks without gradients."""
        device = self.prompt_learner.device
        feats = []
        with torch.no_grad():
            for start in range(0, self.num_classes, self.TEXT_CHUNK):
                labels = torch.arange(start, min(start + self.TEXT_CHUNK, self.num_classes), device=device)
                feats.append(self.text_features_for(labels))
        return torch.cat(feats, dim=0)

    def class_text_features(self) -> torch.Tensor:
        device = self.prompt_learner.device
        if self._text_cache is None or self._text_cache.device != device:
            self._text_cache = self.compute_class_text_features()
        return self._text_cache

    def invalidate_text_cache(self) -> None:
        self._text_cache = None

    def image_text_logits(self, enc: dict[str, Any], text_features: torch.Tensor) -> torch.Tensor:
        return enc["proj"] @ text_features.t().to(enc["proj"].dtype)

    def extra_outputs(self, enc: dict[str, Any], out: ReIDOutput, labels: torch.Tensor | None) -> None:
        """Subclasses add their extras to ``out.extras`` here."""

    def embed_features(self, enc: dict[str, Any]) -> torch.Tensor:
        if self.neck_feat == "after":
            return torch.cat([self.bottleneck(enc["global"]), self.bottleneck_proj(enc["proj"])], dim=1)
        return torch.cat([enc["global"], enc["proj"]], dim=1)

    # ------------------------------------------------------------------ contract
    def forward(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        cams: torch.Tensor | None = None,
        **extra,
    ) -> ReIDOutput:
        if self.stage == "prompt":
            enc = extra.get("image_encoding")
            if enc is None:
                if images is None:
                    raise ConfigError(f"{self.variant}: forward needs images (or image_encoding in stage 'prompt')")
                with torch.no_grad():
                    enc = self.encode_image_stages(images)
            extras: dict[str, Any] = {
                "image_features": enc["global"],
                "image_features_last": enc["last"],
                "image_features_proj": enc["proj"],
            }
            if labels is not None:
                extras["text_features"] = self.text_features_for(labels, enc)
                extras["text_labels"] = labels
            out = ReIDOutput(features=enc["global"], logits=None, extras=extras)
            self.extra_outputs(enc, out, labels)
            return out
        enc = self.encode_image_stages(images)
        feat, proj, last = enc["global"], enc["proj"], enc["last"]
        bn, bn_proj = self.bottleneck(feat), self.bottleneck_proj(proj)
        logits, logits_proj = self.classifier(bn), self.classifier_proj(bn_proj)
        text = self.class_text_features()
        extras = {
            "image_features": feat,
            "image_features_last": last,
            "image_features_proj": proj,
            "bn_features": bn,
            "bn_features_proj": bn_proj,
            "logits_proj": logits_proj,
            "id_logits": [logits, logits_proj],
            "triplet_features": [last, feat, proj],
            "class_text_features": text,
            "i2t_logits": self.image_text_logits(enc, text),
        }
        out = ReIDOutput(features=feat, logits=logits, extras=extras)
        self.extra_outputs(enc, out, labels)
        return out

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        enc = self.encode_image_stages(images)
        return F.normalize(self.embed_features(enc), dim=1)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self.invalidate_text_cache()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def build_clipreid(
    *,
    num_classes: int,
    pretrained: bool | str = True,
    tiny: bool = False,
    input_size: tuple[int, int] | None = None,
    backbone: str = "RN50",
    stride_size: int = 16,
    neck_feat: str = "before",
    prompt_template: str = CLIPREID_TEMPLATE,
) -> CLIPReID:
    """CLIP-ReID on CLIP ``backbone`` ("RN50" | "ViT-B-16"); see the module docstring."""
    return CLIPReID(
        num_classes=num_classes,
        backbone=backbone,
        pretrained=pretrained,
        tiny=tiny,
        input_size=input_size,
        stride_size=stride_size,
        neck_feat=neck_feat,
        prompt_template=prompt_template,
    )


register_variant(
    "clipreid",
    build_clipreid,
    "CLIP-ReID baseline (Li et al., AAAI 2023): CLIP RN50 or ViT-B/16, learnt identity prompts, "
    "two stages (prompt, image)",
)
