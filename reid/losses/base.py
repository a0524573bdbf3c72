"""Losses as separate objects, combined by a weighted loss set built from config.

Config format (the same in YAML configs, ``--set`` overrides and a variant's ``DEFAULT_LOSSES``)::

    {"id":      {"weight": 1.0, "input": "id_logits", "epsilon": 0.1},
     "triplet": {"weight": 1.0, "input": "triplet_features", "margin": 0.3},
     "tri_bn":  {"type": "triplet", "weight": 0.5, "input": "bn_features"}}

The key names the term (and, unless ``type`` is given, the loss class); ``weight`` (default 1.0)
multiplies it in the total; a zero weight drops the term; every other key is a constructor argument
of the loss class. A bare number is shorthand for ``{"weight": number}``.

Every loss reads named entries of the model's :class:`~reidpipe.reid.output.ReIDOutput`:
``"features"`` and ``"logits"`` are the dataclass fields, any other name is a key of ``extras``. An
entry may be a tensor or a list/tuple of tensors (multi-branch models); a list is scored element by
element and reduced with ``reduce="mean"`` (default) or ``"sum"``. Batch items (``labels``, ``cams``,
optional extras such as ``parsing``) come from the ``batch`` dict.

Extending: subclass :class:`Loss`, implement ``compute(output, batch)`` (or ``score(value, batch)``
for a loss over one input) and register it with ``@register_loss("name")`` in a module of this
package; list the module in ``reid/losses/__init__.py`` (modules that do not exist yet are skipped).

Losses with parameters (center loss, a learnable logit scale) are ``nn.Parameter`` s of the loss set:
``LossSet.trainable_parameters()`` lists them so the engine puts them in an optimiser.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, overload

import torch
from torch import nn

from reidpipe.errors import ConfigError
from reidpipe.registry import Registry
from reidpipe.reid.output import ReIDOutput

__all__ = [
    "Loss",
    "LossSet",
    "LossResult",
    "register_loss",
    "build_loss_set",
    "list_losses",
    "get_loss_class",
    "read_output",
]


def _ensure_loaded() -> None:
    import reidpipe.reid.losses  # noqa: F401  (imports every loss module present)


_LOSSES: Registry[type[Loss]] = Registry("loss", loader=_ensure_loaded)
_L = TypeVar("_L", bound="type[Loss]")


@overload
def register_loss(name: str, cls: None = None) -> Callable[[_L], _L]: ...
@overload
def register_loss(name: str, cls: _L) -> _L: ...
def register_loss(name: str, cls: type[Loss] | None = None) -> Callable | type[Loss]:
    """Register a loss class under ``name``; usable as ``@register_loss("name")`` or a plain call
    (the registry rule of :mod:`reidpipe.registry`)."""

    def _register(klass: _L) -> _L:
        if not (isinstance(klass, type) and issubclass(klass, Loss)):
            raise ConfigError(f"loss {name!r}: {klass!r} is not a subclass of reidpipe.reid.losses.Loss")
        _LOSSES.add(name, klass)
        return klass

    return _register(cls) if cls is not None else _register


def list_losses() -> list[str]:
    """Names of every registered loss, sorted."""
    return sorted(_LOSSES.names())


def get_loss_class(name: str) -> type[Loss]:
    return _LOSSES.get(name)


def read_output(output: ReIDOutput, key: str, loss_name: str = "") -> Any:
    """``output.features`` / ``output.logits`` for those names, else ``output.extras[key]``."""
    value: Any
    if key == "features":
        value = output.features
    elif key == "logits":
        value = output.logits
    else:
        value = output.extras.get(key)
    if value is None:
        have = ["features"] + (["logits"] if output.logits is not None else []) + sorted(output.extras)
        who = f"loss {loss_name!r}: " if loss_name else ""
        raise ConfigError(f"{who}the model output has no {key!r} in this stage; it has: {', '.join(have)}")
    return value


def batch_labels(batch: dict, loss_name: str) -> torch.Tensor:
    labels = batch.get("labels")
    if labels is None:
        raise ConfigError(f"loss {loss_name!r} needs batch['labels'] (identity labels)")
    return labels


class Loss(nn.Module):
    """One loss term. Subclasses set ``DEFAULT_INPUT`` and implement :meth:`score` (one input) or
    override :meth:`compute` (several inputs)."""

    DEFAULT_INPUT: ClassVar[str] = "features"

    def __init__(self, input: str | None = None, reduce: str = "mean"):
        super().__init__()
        self.name = type(self).__name__
        self.input = input or self.DEFAULT_INPUT
        if reduce not in ("mean", "sum"):
            raise ConfigError(f"loss {self.name}: reduce must be 'mean' or 'sum', got {reduce!r}")
        self.reduce = reduce

    @classmethod
    def from_config(cls, params: dict[str, Any], context: dict[str, Any]) -> Loss:
        """Build from config params; ``context`` is ``model.loss_context()`` (or empty)."""
        return cls(**params)

    def forward(self, output: ReIDOutput, batch: dict) -> torch.Tensor:
        return self.compute(output, batch)

    def compute(self, output: ReIDOutput, batch: dict) -> torch.Tensor:
        value = read_output(output, self.input, self.name)
        return self.reduce_list(value, lambda v: self.score(v, batch))

    def score(self, value: torch.Tensor, batch: dict) -> torch.Tensor:  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} must implement score() or compute()")

    def reduce_list(self, value: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if isinstance(value, (list, tuple)):
            if not value:
                raise ConfigError(f"loss {self.name}: input {self.input!r} is an empty list")
            terms = [fn(v) for v in value]
            total = torch.stack(terms).sum()
            return total / len(terms) if self.reduce == "mean" else total
        return fn(value)

    def extra_repr(self) -> str:
        return f"input={self.input!r}"


@dataclass
class LossResult:
    """``total``: the weighted sum to back-propagate. ``terms``: each term's *unweighted* value, by
    its config name (log these). ``weights``: the weight of each term."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)


class LossSet(nn.Module):
    """Named, weighted losses. ``loss_set(output, batch) -> LossResult``."""

    def __init__(self, losses: dict[str, Loss], weights: dict[str, float]):
        super().__init__()
        if not losses:
            raise ConfigError("a loss set needs at least one loss with a non-zero weight")
        self.losses = nn.ModuleDict(losses)
        self.weights = {k: float(weights[k]) for k in losses}

    def forward(self, output: ReIDOutput, batch: dict) -> LossResult:
        terms: dict[str, torch.Tensor] = {}
        total: torch.Tensor | None = None
        for name, loss in self.losses.items():
            value = loss(output, batch)
            terms[name] = value
            weighted = self.weights[name] * value
            total = weighted if total is None else total + weighted
        if total is None:
            raise ConfigError("the loss set is empty: give at least one loss")
        return LossResult(total=total, terms=terms, weights=dict(self.weights))

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """Parameters owned by the losses (center-loss centers, learnable logit scales)."""
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    @property
    def names(self) -> list[str]:
        return list(self.losses)


def build_loss_set(cfg: dict[str, Any], model: Any = None, context: dict[str, Any] | None = None) -> LossSet:
    """Build a :class:`LossSet` from ``{name: {weight: w, type: cls_name?, **params}}``.

    ``model`` (optional) supplies ``model.loss_context()`` — the class count and feature widths that
    parametrised losses (center loss) need; ``context`` may give them directly instead.
    """
    if not isinstance(cfg, dict):
        raise ConfigError(f"a loss config must be a mapping {{name: {{weight: ...}}}}, got {cfg!r}")
    ctx: dict[str, Any] = {}
    if model is not None and hasattr(model, "loss_context"):
        ctx.update(model.loss_context())
    ctx.update(context or {})
    losses: dict[str, Loss] = {}
    weights: dict[str, float] = {}
    for name, params in cfg.items():
        if isinstance(params, (int, float)) and not isinstance(params, bool):
            params = {"weight": params}
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ConfigError(f"loss {name!r}: expected a mapping of parameters, got {params!r}")
        params = dict(params)
        try:
            weight = float(params.pop("weight", 1.0))
        except (TypeError, ValueError):
            raise ConfigError(f"loss {name!r}: weight must be a number") from None
        type_name = params.pop("type", name)
        cls = get_loss_class(type_name)
        _check_params(cls, name, params)
        if weight == 0.0:
            continue
        try:
            loss = cls.from_config(params, ctx)
        except ConfigError:
            raise
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"loss {name!r}: bad parameters {params!r}: {exc}") from None
        loss.name = name
        losses[name] = loss
        weights[name] = weight
    return LossSet(losses, weights)


def _check_params(cls: type[Loss], name: str, params: dict[str, Any]) -> None:
    accepted: set[str] = set()
    for klass in cls.__mro__:
        if klass in (nn.Module, object):
            continue
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        sig = inspect.signature(init)
        has_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
        accepted.update(
            p.name
            for p in sig.parameters.values()
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        )
        if not has_var_kw:
            break
    accepted.discard("self")
    accepted.update(getattr(cls, "CONTEXT_PARAMS", ()))
    for key in params:
        if key not in accepted:
            raise ConfigError(
                f"loss {name!r} ({cls.__name__}) has no parameter {key!r}; "
                f"its parameters are: weight, type, {', '.join(sorted(accepted))}"
            )


def as_list(value: Any) -> Sequence[torch.Tensor]:
    return list(value) if isinstance(value, (list, tuple)) else [value]
