"""``pivl`` — π-VL, Part-Informed Visual-language Learning (paper 002), on CLIP-ReID (RN50 or ViT-B/16).

A subclass of :class:`reidpipe.reid.variants.clipreid.CLIPReID` (the baseline of the paper's
ablations), adding (module -> where it lives):

(a) Part-informed prompt tuning (Sec. 3.3)
    - parsing maps, 20 LIP classes per pixel (Eq. 5): an input, ``forward(..., parsing=(N, H, W) long)``;
      :mod:`reidpipe.reid.modules.parsing` (classes, grid down-sampling by majority vote, pair indexing);
    - identity-aware part prompts (Eq. 6) ``"A photo of a X X X X person's {part}."``, X X X X = the
      identity's learnable tokens shared with CLIP-ReID's ``"A photo of a X X X X person."``:
      :class:`~reidpipe.reid.modules.parsing.PartPromptEncoder` on the baseline's ``PromptLearner``;
    - per-pixel visual embeddings of the frozen image encoder in the joint space: RN50 = the attention
      pool's value and output projections applied to every position of the layer-4 map (with its
      positional embedding, DenseCLIP's dense form of CLIP's attention pool); ViT = ``ln_post`` patch
      tokens ``@ proj``: :meth:`PiVL.dense_image_embeddings`;
    - pixel-level dense contrastive loss (Eq. 7-8), positives = same identity and same part:
      ``pixel_contrastive`` in :mod:`reidpipe.reid.losses.dense`.
(b) Hierarchical fusion-based alignment (Sec. 3.4), training only:
    - RN50: conv2_x / conv3_x / conv4_x outputs (layer1/2/3: 256/512/1024 ch, strides 4/8/16) -> 1x1
      depth-wise convs (channel multiplier 4/2/1) to the joint width 1024 -> resampled to stride 8 ->
      summed: :class:`~reidpipe.reid.modules.fusion.HierarchicalFusionHead`;
    - ViT-B/16: ViTDet's simple feature pyramid [30] on the last block's patch tokens (strides 4/8/16
      from 2 / 1 / 0 transposed convs) plays conv2/3/4's role, then the same head to width 512:
      :class:`~reidpipe.reid.modules.fusion.SimpleFeaturePyramid`;
    - MSE between the fused map and the pixel part-text embeddings (Eq. 11): ``pixel_mse``.
    ``embed`` is the baseline's: the head never runs at inference (no extra cost).

Stages (``STAGES = ("prompt", "part_prompt", "image")``) and the paper's recipe (Sec. 4.2):

``prompt``       identity prompt tuning, CLIP-ReID's stage 1 (i2t + t2i contrastive); only the
                 learnable identity tokens train. 60 epochs.
``part_prompt``  part-informed prompt tuning with ``pixel_contrastive``; encoders frozen, only the
                 identity tokens train (through the part prompts). 20 epochs.
                 Both stage-1 parts: Adam, lr 3.5e-4 (CLIP-ReID's; the paper's value was lost in
                 extraction) with cosine decay, batch 64 = 16 identities x 4 images, 256x128, no
                 augmentation.
``image``        CLIP-ReID's stage 2 (ID + triplet (margin 0.3) + image-to-text CE, with the frozen
                 text features as classifier) + lambda * ``pixel_mse`` (Eq. 12; lambda lost in
                 extraction, default 1.0). Augmentation: pad 10 + random crop + horizontal flip +
                 random erasing, 256x128; batch 16 x 4. CNN: 120 epochs, warm-up, lr x0.1 at 40 and
                 x0.01 at 70; ViT: 60 epochs, warm-up, x0.1 at 30 and x0.01 at 50 (base lr lost in
                 extraction: CLIP-ReID's 3.5e-4 (RN50) / 5e-6 (ViT-B/16) are the configs' defaults).

Extras of ``forward`` (besides the baseline's): stage ``part_prompt``: ``pixel_features`` (N, D, h, w)
frozen dense image embeddings on the encoder's final grid, ``part_text_features`` (M, D) text embeddings
of the batch's (identity, part) pairs (with gradient to the prompts), ``part_text_labels`` /
``part_text_parts`` (M,), ``pixel_text_index`` (N, h, w) pair row per pixel (-1 = ignored). Stage
``image``: ``fused_features`` (N, D, H/8, W/8), ``part_text_features`` (no gradient), ``fused_text_index``
(N, H/8, W/8). D is CLIP's joint width (1024 RN50, 512 ViT-B/16; the paper's "aligned to 1024" is the
RN50 figure).

Parsing maps (``parsing``): LongTensor (N, H, W) at the input resolution, LIP ids 0..19 (0 = background),
255 = ignore; they follow the image's flip/pad/crop (pad = 0, background). Stages ``part_prompt`` and
``image`` need them (``BATCH_EXTRAS``); a batch without them raises ``ConfigError``.

Options (besides the baseline's ``backbone``, ``stride_size``, ``neck_feat``, ``tiny``, ``input_size``):
``part_template`` (needs ``{part}``), ``fusion`` ("sum" | "mean"), ``fusion_down`` ("avg" | "max" |
"bilinear"), ``fusion_stride`` (8).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from reidpipe.errors import ConfigError
from reidpipe.reid.modules.fusion import HierarchicalFusionHead, SimpleFeaturePyramid
from reidpipe.reid.modules.parsing import (
    NUM_PARTS,
    PART_TEMPLATE,
    PartPromptEncoder,
    check_parsing,
    downsample_parsing,
    pixel_pairs,
)
from reidpipe.reid.modules.prompt import CLIPREID_TEMPLATE
from reidpipe.reid.output import ReIDOutput
from reidpipe.reid.registry import register_variant
from reidpipe.reid.variants.clipreid import CLIPReID

__all__ = ["PiVL", "build_pivl"]


def _merge(base: dict, extra: dict) -> dict:
    out = {k: dict(v) for k, v in base.items()}
    for stage, losses in extra.items():
        out.setdefault(stage, {}).update(losses)
    return out


class PiVL(CLIPReID):
    variant = "pivl"
    STAGES: ClassVar[tuple[str, ...]] = ("prompt", "part_prompt", "image")
    DEFAULT_LOSSES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = _merge(
        CLIPReID.DEFAULT_LOSSES,
        {
            "part_prompt": {"pixel_contrastive": {"weight": 1.0, "temperature": 0.07}},
            "image": {"pixel_mse": {"weight": 1.0}},
        },
    )
    #: batch items (beyond images/labels/cams) each stage needs, passed to ``forward`` as keywords
    BATCH_EXTRAS: ClassVar[dict[str, tuple[str, ...]]] = {"part_prompt": ("parsing",), "image": ("parsing",)}
    #: parameters of the training-only head (dropped by ``embed``)
    AUX_PREFIXES: ClassVar[tuple[str, ...]] = ("fusion.", "pyramid.")

    def __init__(
        self,
        *,
        part_template: str = PART_TEMPLATE,
        fusion: str = "sum",
        fusion_down: str = "avg",
        fusion_stride: int = 8,
        **kwargs,
    ):
        super().__init__(**kwargs)
        clip = self.backbone
        self.part_prompts = PartPromptEncoder(self.prompt_learner, part_template)
        self.pyramid: SimpleFeaturePyramid | None
        if clip.is_vit:
            self.pyramid = SimpleFeaturePyramid(clip.feature_dim)
            in_channels, in_strides = self.pyramid.out_channels, self.pyramid.strides
        else:
            self.pyramid = None
            in_channels, in_strides = tuple(clip.stage_dims[:3]), (4, 8, 16)
        self.fusion = HierarchicalFusionHead(in_channels, in_strides, clip.proj_dim, fusion_stride, fusion, fusion_down)
        self.fusion_stride = int(fusion_stride)
        self.feature_dims.update(
            {"pixel_features": clip.proj_dim, "fused_features": clip.proj_dim, "part_text_features": clip.proj_dim}
        )
        self._pair_cache: torch.Tensor | None = None
        self._pair_filled: torch.Tensor | None = None
        self._pending: tuple | None = None  # (parsing, N, (H, W)) of the forward in progress

    # ------------------------------------------------------------------ stages and parameters
    def train(self, mode: bool = True):
        super().train(mode)
        if self.stage == "part_prompt":
            self.backbone.eval()  # frozen encoders in both stage-1 parts
        return self

    def trainable_parameters(self, name: str) -> list[tuple[str, nn.Parameter]]:
        if name == "part_prompt":
            return super().trainable_parameters("prompt")  # only the learnable identity tokens
        return super().trainable_parameters(name)

    def invalidate_text_cache(self) -> None:
        super().invalidate_text_cache()
        self._pair_cache = None
        self._pair_filled = None

    # ------------------------------------------------------------------ dense features
    def dense_image_embeddings(self, enc: dict[str, Any]) -> torch.Tensor:
        """(N, proj_dim, h, w) per-position image embeddings in the joint image-text space."""
        fmap = enc["map"]
        n, _, h, w = fmap.shape
        if self.backbone.is_vit:
            return self.backbone.project(fmap.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(n, -1, h, w)
        pool = self.backbone.clip.visual.attnpool
        tokens = fmap.flatten(2).transpose(1, 2) + pool.positional_embedding[1:].to(fmap.dtype)
        dense = pool.c_proj(pool.v_proj(tokens))
        return dense.transpose(1, 2).reshape(n, -1, h, w)

    def fused_features(self, enc: dict[str, Any], image_size: tuple[int, int]) -> torch.Tensor:
        """The hierarchical fusion head's (N, proj_dim, H/8, W/8) map (training only)."""
        size = (image_size[0] // self.fusion_stride, image_size[1] // self.fusion_stride)
        if self.pyramid is not None:  # ViT
            tokens = enc["stages"][-1][:, 1:]
            gh, gw = self.backbone.grid_size
            fmap = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, gh, gw)
            feats = self.pyramid(fmap)
        else:
            feats = enc["stages"][:3]
        return self.fusion(feats, size)

    def pair_text_features(self, pair_ids: torch.Tensor, pair_parts: torch.Tensor) -> torch.Tensor:
        """Frozen (stage ``image``) part-text embeddings of (identity, part) pairs, cached per pair."""
        device = self.prompt_learner.device
        cache, filled = self._pair_cache, self._pair_filled
        if cache is None or filled is None or cache.device != device:
            cache = torch.zeros(self.num_classes * NUM_PARTS, self.backbone.proj_dim, device=device)
            filled = torch.zeros(self.num_classes * NUM_PARTS, dtype=torch.bool, device=device)
            self._pair_cache, self._pair_filled = cache, filled
        code = (pair_ids * NUM_PARTS + pair_parts).to(device)
        todo = code[~filled[code]]
        if todo.numel():
            with torch.no_grad():
                for start in range(0, todo.numel(), self.TEXT_CHUNK):
                    chunk = todo[start : start + self.TEXT_CHUNK]
                    cache[chunk] = self.part_prompts(chunk // NUM_PARTS, chunk % NUM_PARTS).float()
            filled[todo] = True
        return cache[code]

    def _parsing_pairs(self, parsing, batch_size: int, labels: torch.Tensor | None, size, device):
        if parsing is None or labels is None:
            raise ConfigError(
                f"pivl stage {self.stage!r} needs identity labels and parsing maps "
                "(batch['parsing'], LongTensor (N, H, W) of LIP ids 0..19; set data.parsing_root)"
            )
        parsing = check_parsing(parsing, batch_size).to(device)
        grid = downsample_parsing(parsing, size)
        return pixel_pairs(grid, labels.to(device))

    # ------------------------------------------------------------------ contract
    def forward(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | None = None,
        cams: torch.Tensor | None = None,
        parsing: torch.Tensor | None = None,
        **extra,
    ) -> ReIDOutput:
        if self.stage == "part_prompt":
            with torch.no_grad():
                enc = self.encode_image_stages(images)
                pixels = self.dense_image_embeddings(enc)
            pair_ids, pair_parts, index = self._parsing_pairs(
                parsing, images.shape[0], labels, pixels.shape[-2:], images.device
            )
            texts = self.part_prompts(pair_ids, pair_parts)
            extras = {
                "image_features": enc["global"],
                "image_features_last": enc["last"],
                "image_features_proj": enc["proj"],
                "pixel_features": pixels,
                "part_text_features": texts,
                "part_text_labels": pair_ids,
                "part_text_parts": pair_parts,
                "pixel_text_index": index,
            }
            return ReIDOutput(features=enc["global"], logits=None, extras=extras)
        # stages "prompt" and "image": the baseline's forward; extra_outputs adds the fusion-head extras
        self._pending = (parsing, images.shape[0], tuple(images.shape[-2:]))
        try:
            return super().forward(images, labels, cams, **extra)
        finally:
            self._pending = None

    def encode_image_stages(self, images: torch.Tensor, return_stages: bool = False) -> dict[str, Any]:
        pending = getattr(self, "_pending", None)
        need = return_stages or (self.stage == "image" and pending is not None and pending[0] is not None)
        return super().encode_image_stages(images, return_stages=need)

    def extra_outputs(self, enc: dict[str, Any], out: ReIDOutput, labels: torch.Tensor | None) -> None:
        pending = getattr(self, "_pending", None)
        if self.stage != "image" or pending is None:
            return
        parsing, batch_size, image_hw = pending
        if parsing is None:
            if self.training:
                self._parsing_pairs(None, batch_size, labels, (1, 1), out.features.device)  # raises
            return  # an evaluation forward without parsing maps: no alignment extras
        fused = self.fused_features(enc, image_hw)
        pair_ids, pair_parts, index = self._parsing_pairs(parsing, batch_size, labels, fused.shape[-2:], fused.device)
        out.extras.update(
            {
                "fused_features": fused,
                "part_text_features": self.pair_text_features(pair_ids, pair_parts),
                "part_text_labels": pair_ids,
                "part_text_parts": pair_parts,
                "fused_text_index": index,
            }
        )


def build_pivl(
    *,
    num_classes: int,
    pretrained: bool | str = True,
    tiny: bool = False,
    input_size: tuple[int, int] | None = None,
    backbone: str = "RN50",
    stride_size: int = 16,
    neck_feat: str = "before",
    prompt_template: str = CLIPREID_TEMPLATE,
    part_template: str = PART_TEMPLATE,
    fusion: str = "sum",
    fusion_down: str = "avg",
    fusion_stride: int = 8,
) -> PiVL:
    """π-VL on CLIP ``backbone`` ("RN50" | "ViT-B-16"); see the module docstring."""
    return PiVL(
        num_classes=num_classes,
        backbone=backbone,
        pretrained=pretrained,
        tiny=tiny,
        input_size=input_size,
        stride_size=stride_size,
        neck_feat=neck_feat,
        prompt_template=prompt_template,
        part_template=part_template,
        fusion=fusion,
        fusion_down=fusion_down,
        fusion_stride=fusion_stride,
    )


register_variant(
    "pivl",
    build_pivl,
    "π-VL (paper 002): CLIP-ReID + parsing-guided part prompts (dense contrastive) + hierarchical "
    "fusion alignment head (training only); RN50 or ViT-B/16; stages prompt, part_prompt, image",
)
