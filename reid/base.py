"""The surface every ReID model in reidpipe exposes (docs/design.md §7.1).

Contract (the pipeline, the trainers, export and the tests rely on it):

- ``forward(images, labels=None, cams=None, **extra) -> ReIDOutput`` — one return type for every
  variant and stage; ``extra`` carries optional batch items such as ``parsing`` (π-VL parsing maps);
  models ignore extras they do not use.
- ``embed(images) -> Tensor (N, D)``, inference only, L2-normalised; what the pipeline, eval and the
  ONNX export use.
- ``set_stage(name)`` switches what ``forward`` computes for a training stage named in ``STAGES``
  (e.g. CLIP-ReID's ``"prompt"`` then ``"image"``); ``trainable_parameters(name)`` lists the named
  parameters that train in that stage (everything else is frozen by the engine).
- Attributes read by the pipeline and the checkpoint: ``variant``, ``input_size`` (H, W),
  ``pixel_mean`` / ``pixel_std`` (RGB, applied after scaling to [0, 1]), ``embed_dim``,
  ``num_classes``, and ``build_kwargs`` (what ``create_model`` needs to rebuild the same architecture).

Per-stage default losses (the convention the engine and the contract test use):

- ``DEFAULT_LOSSES = {stage: {loss_name: {"weight": w, **params}}}`` — a class attribute in the
  format of ``reidpipe.reid.losses.build_loss_set``; every stage in ``STAGES`` should have an entry.
  ``default_losses(stage)`` returns a deep copy of it; a variant whose defaults depend on its
  configuration (e.g. CLIP-ReID's ID-loss weight differs for RN50 and ViT-B/16, a center loss needs
  the feature width) overrides ``default_losses`` instead. A run's config may override any key.
- ``feature_dims``: ``{output key: width}`` of the (N, D) tensors ``forward`` returns (``"features"``,
  and extras keys such as ``"bn_features"``); losses with parameters sized by a feature (center loss)
  read it. Fill it in ``__init__``.
- ``loss_context()`` returns what a loss set needs from the model at build time (``num_classes``,
  ``feature_dims``).
"""

from __future__ import annotations

import abc
import copy
from typing import Any, ClassVar

import torch
from torch import nn

from reidpipe.errors import ConfigError
from reidpipe.reid.output import ReIDOutput


class ReIDModel(nn.Module, metaclass=abc.ABCMeta):
    variant: str = ""
    STAGES: ClassVar[tuple[str, ...]] = ("main",)
    #: {stage: {loss name: {"weight": w, **params}}}; see the module docstring.
    DEFAULT_LOSSES: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {}

    def __init__(
        self,
        *,
        num_classes: int,
        input_size: tuple[int, int],
        pixel_mean,
        pixel_std,
        embed_dim: int,
        build_kwargs: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.num_classes = int(num_classes)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.pixel_mean = tuple(float(v) for v in pixel_mean)
        self.pixel_std = tuple(float(v) for v in pixel_std)
        self.embed_dim = int(embed_dim)
        self.build_kwargs = dict(build_kwargs or {})
        self.stage = self.STAGES[0]
        #: {output key: feature width}, e.g. {"features": 2048, "bn_features": 2048}.
        self.feature_dims: dict[str, int] = {}

    @abc.abstractmethod
    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None, cams: torch.Tensor | None = None, **extra
    ) -> ReIDOutput:
        """Training/analysis forward; see the module docstring."""

    @abc.abstractmethod
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) normalised images -> (N, embed_dim) L2-normalised embeddings."""

    def set_stage(self, name: str) -> None:
        if name not in self.STAGES:
            raise ConfigError(f"{self.variant}: unknown stage {name!r}; this model has stages {list(self.STAGES)}")
        self.stage = name

    def trainable_parameters(self, name: str) -> list[tuple[str, nn.Parameter]]:
        """Default: every parameter trains in every stage."""
        return list(self.named_parameters())

    def default_losses(self, stage: str | None = None) -> dict[str, dict[str, Any]]:
        """The loss-set config of ``stage`` (default: the current stage), as ``build_loss_set`` takes it."""
        stage = self.stage if stage is None else stage
        if stage not in self.STAGES:
            raise ConfigError(f"{self.variant}: unknown stage {stage!r}; this model has stages {list(self.STAGES)}")
        return copy.deepcopy(self.DEFAULT_LOSSES.get(stage, {}))

    def loss_context(self) -> dict[str, Any]:
        """What losses may need from the model when they are built (class count, feature widths)."""
        return {"num_classes": self.num_classes, "feature_dims": dict(self.feature_dims)}
