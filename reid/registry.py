"""The model zoo's registry and its one factory.

A variant is a registration, not a copy of files: each module ``reid/variants/<name>.py`` calls
:func:`register_variant` at import time with a *builder*, a function

    builder(*, num_classes: int, pretrained: bool | str, tiny: bool = False,
            input_size: tuple[int, int] | None = None, **overrides) -> ReIDModel

Every builder accepts ``tiny=True`` (a small configuration of the same architecture, for tests:
same modules, small widths/depths, small input such as 64x32) and ``input_size=(H, W)``.
``pretrained`` is ``True`` (the backbone's published weights through torchvision / open_clip; they
download on a connected machine), ``False`` (random initialisation, never touches the network) or
a path to a local weights file.

Public functions (re-exported lazily as ``reidpipe.list_variants`` / ``reidpipe.create_model``):

- :func:`list_variants` -> sorted names;
- :func:`create_model` -> a :class:`~reidpipe.reid.base.ReIDModel` with ``variant`` and
  ``build_kwargs`` filled in, so that ``create_model(m.variant, num_classes=m.num_classes,
  pretrained=False, **m.build_kwargs)`` rebuilds the same architecture (that is how checkpoints
  are loaded);
- :func:`variant_description` -> the one-line description given at registration.

The variant modules are imported lazily, on the first call of any function here, so importing this
module costs nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from typing import Any

from reidpipe.errors import ConfigError
from reidpipe.registry import Registry

__all__ = ["register_variant", "list_variants", "create_model", "variant_description", "VariantSpec"]


@dataclass(frozen=True)
class VariantSpec:
    name: str
    builder: Callable[..., Any]
    description: str


def _load_variants() -> None:
    import reidpipe.reid.variants  # noqa: F401  (registers every variant module present)


_VARIANTS: Registry[Callable[..., Any]] = Registry("model variant", loader=_load_variants)


def register_variant(name: str, builder: Callable[..., Any], description: str) -> None:
    """Register ``builder`` under ``name`` (the registry rule of :mod:`reidpipe.registry`: the same
    builder twice is a no-op, another builder under a taken name raises :class:`ConfigError`)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"variant name {name!r} must be a Python identifier (e.g. 'clipreid')")
    if not callable(builder):
        raise ConfigError(f"variant {name!r}: builder {builder!r} is not callable")
    _VARIANTS.add(name, builder, description)


def list_variants() -> list[str]:
    """Names of every registered variant, sorted."""
    return sorted(_VARIANTS.names())


def variant_description(variant: str) -> str:
    """The one-line description of ``variant`` given at registration."""
    return _spec(variant).description


def _spec(variant: str) -> VariantSpec:
    entry = _VARIANTS.entry(variant)
    return VariantSpec(entry.name, entry.value, entry.description)


def _accepted_keywords(builder: Callable[..., Any]) -> set[str] | None:
    """Keyword names the builder accepts, or None when it takes ``**kwargs`` (it then checks itself)."""
    try:
        sig = inspect.signature(builder)
    except (TypeError, ValueError):
        return None
    names = set()
    for p in sig.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            names.add(p.name)
    return names


def create_model(variant: str, num_classes: int = 1, pretrained: bool | str | PathLike = True, **overrides: Any):
    """Build a model of ``variant``.

    Args:
        variant: a name from :func:`list_variants`.
        num_classes: identities of the training set (sizes the classifier and the per-identity
            prompts); use the checkpoint's value to rebuild a trained model. Default 1 (embedding
            only, e.g. to export or to run a pipeline from backbone weights).
        pretrained: ``True`` for the backbone's published weights (open_clip OpenAI / torchvision
            ImageNet; downloaded on a connected machine, offline without a cache ->
            ``WeightsUnavailableError``), ``False`` for random init, or a path to a local weights file.
        **overrides: architecture options of the variant (``tiny``, ``input_size``, ``backbone``,
            ...; see each variant's docstring). An option the variant does not know raises
            :class:`ConfigError` naming it.

    Returns the model in its first training stage, with ``model.variant`` and ``model.build_kwargs``
    set (``build_kwargs`` = the overrides, which is what a checkpoint stores to rebuild it).
    """
    spec = _spec(variant)
    try:
        num_classes = int(num_classes)
    except (TypeError, ValueError):
        raise ConfigError(f"num_classes must be an integer, got {num_classes!r}") from None
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    if isinstance(pretrained, PathLike):
        pretrained = str(pretrained)
    if isinstance(pretrained, str) and pretrained.strip().lower() in (
        "true",
        "false",
        "yes",
        "no",
        "none",
        "",
    ):
        pretrained = pretrained.strip().lower() in ("true", "yes")  # e.g. --set model.pretrained=false
    if not isinstance(pretrained, (bool, str)):
        raise ConfigError(f"pretrained must be True, False or a file path, got {pretrained!r}")
    if "input_size" in overrides and overrides["input_size"] is not None:
        overrides["input_size"] = _check_input_size(overrides["input_size"])
    accepted = _accepted_keywords(spec.builder)
    if accepted is not None:
        for key in overrides:
            if key not in accepted:
                options = ", ".join(sorted(accepted - {"num_classes", "pretrained"}))
                raise ConfigError(f"variant {variant!r} has no option {key!r}; its options are: {options}")
    model = spec.builder(num_classes=num_classes, pretrained=pretrained, **overrides)
    model.variant = variant
    kwargs = dict(model.build_kwargs or {})
    kwargs.update(overrides)
    if "input_size" in kwargs and kwargs["input_size"] is not None:
        kwargs["input_size"] = [int(v) for v in kwargs["input_size"]]
    model.build_kwargs = kwargs
    return model


def _check_input_size(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        value = value.replace("x", ",").split(",")
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"input_size must be (H, W), got {value!r}") from None
    if h < 16 or w < 16:
        raise ConfigError(f"input_size must be at least 16x16 pixels, got {value!r}")
    return h, w
