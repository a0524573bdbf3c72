"""The parts a training run is built from, one function each (fast-reid / detectron2 style):

- :func:`build_train_dataset`: the dataset of ``data``, checked to have a training split, with the
  training splits of ``data.mix`` added;
- :func:`build_model`: the variant sized to the dataset's identities, started from ``model.init``
  when given, on its device and memory format;
- :func:`check_stages`: every stage of the config is a stage of the model and fits the dataset;
- :func:`select_trainable`: what trains in a stage (everything else frozen);
- :func:`build_losses`: the stage's loss set (the model's ``default_losses(stage)`` merged with the
  stage's ``losses``);
- :func:`build_optimizers`: the stage's optimiser, and the separate SGD of the loss-set parameters
  when ``optimizer.loss_lr`` is set (BoT's center loss);
- :func:`build_train_loader`: the stage's transform, P×K or random batch sampler and data loader;
- :func:`wrap_distributed`: DDP around the model when several processes train.

They draw from the global random generators in the order the engine calls them (the loss set's
parameters are initialised randomly), so that order is part of a run's reproducibility.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from reidpipe.errors import ConfigError, DatasetError
from reidpipe.trainers.checkpoint import load_init_weights
from reidpipe.trainers.config import deep_merge
from reidpipe.trainers.optim import build_optimizer
from reidpipe.trainers.runtime import Processes

if TYPE_CHECKING:
    from reidpipe.reid.base import ReIDModel
    from reidpipe.reid.datasets.base import ImageRecord, ReIDDataset
    from reidpipe.reid.losses.base import LossSet
    from reidpipe.reid.sampler import PKSampler, RandomBatchSampler

NamedParameters = list[tuple[str, nn.Parameter]]


@dataclass
class StageRun:
    """Everything one stage steps with, built when the stage starts."""

    trainable: NamedParameters
    loss_set: LossSet
    optimizer: torch.optim.Optimizer
    loss_optimizer: torch.optim.Optimizer | None
    scaler: torch.amp.GradScaler
    train_model: nn.Module  # the model, or DDP around it
    sampler: PKSampler | RandomBatchSampler
    loader: DataLoader


def build_train_dataset(data: dict[str, Any]) -> ReIDDataset:
    """The dataset ``data.dataset`` at ``data.root``, the training splits of ``data.mix`` added to its
    own (:func:`mix_records`); a test-only dataset is a ``DatasetError``."""
    from reidpipe.reid.datasets.base import with_extra_train
    from reidpipe.reid.datasets.readers import build_dataset

    if not data.get("dataset") or not data.get("root"):
        raise ConfigError("data.dataset and data.root must be set (--dataset, --data-root)")
    dataset = _with_train(build_dataset(data["dataset"], data["root"]))
    for entry in data.get("mix") or []:
        dataset = with_extra_train(dataset, mix_records(entry), f"{entry['dataset']} at {entry['root']}")
    return dataset


def mix_records(entry: dict[str, Any]) -> list[ImageRecord]:
    """The training records one ``data.mix`` entry adds: dataset ``entry.dataset`` at ``entry.root``,
    ``entry.ids`` of its identities drawn at random with ``entry.seed`` (default 0; all when ``ids`` is
    null), labelled 0..n-1."""
    from reidpipe.reid.datasets.base import choose_ids
    from reidpipe.reid.datasets.readers import build_dataset

    source = _with_train(build_dataset(entry["dataset"], entry["root"]))
    return choose_ids(source.train, entry.get("ids"), int(entry.get("seed") or 0))


def _with_train(dataset: ReIDDataset) -> ReIDDataset:
    if not dataset.train:
        raise DatasetError(
            f"{dataset.name} at {dataset.root} has no training split "
            "(a test-only dataset: train on another dataset and evaluate on this one)"
        )
    return dataset


def check_parsing(data: dict[str, Any], dataset: ReIDDataset) -> None:
    """With ``data.parsing_root``: every training image has its parsing map."""
    from reidpipe.reid.datasets.images import check_parsing_maps

    if data.get("parsing_root"):
        check_parsing_maps(data["parsing_root"], dataset.train)


def build_model(cfg: dict[str, Any], num_classes: int, device: torch.device, log: Callable[[str], None]) -> ReIDModel:
    """The variant of ``cfg["model"]`` with ``num_classes`` identities, its weights from
    ``model.init`` when set, on ``device`` in the memory format of ``channels_last``."""
    from reidpipe.reid.registry import create_model

    opts = dict(cfg["model"].get("options") or {})
    if cfg["data"].get("input_size"):
        opts["input_size"] = tuple(int(v) for v in cfg["data"]["input_size"])
    model = create_model(
        cfg["model"]["variant"], num_classes=num_classes, pretrained=cfg["model"]["pretrained"], **opts
    )
    if cfg["model"].get("init"):
        log(load_init_weights(model, str(cfg["model"]["init"])))
    model.to(device)
    model.to(memory_format=memory_format(cfg))
    return model


def memory_format(cfg: dict[str, Any]) -> torch.memory_format:
    return torch.channels_last if cfg.get("channels_last") else torch.contiguous_format


def check_stages(cfg: dict[str, Any], model: ReIDModel, dataset: ReIDDataset) -> None:
    """Each stage names a stage of ``model``, its P×K batch fits the identities of ``dataset`` and the
    parsing maps it needs are given; otherwise a one-line ``ConfigError`` / ``DatasetError``."""
    extras = getattr(model, "BATCH_EXTRAS", {}) or {}
    for st in cfg["stages"]:
        if st["name"] not in model.STAGES:
            raise ConfigError(
                f"stage {st['name']!r} of the config is not a stage of {model.variant!r} "
                f"(its stages: {list(model.STAGES)})"
            )
        if st.get("sampler", "pk") == "pk" and dataset.num_train_pids < int(st["p"]):
            raise DatasetError(
                f"{dataset.root}: {dataset.num_train_pids} training identities, fewer than the "
                f"P={st['p']} identities of a P x K batch (stage {st['name']!r}); lower stages.*.p or add people"
            )
        if "parsing" in extras.get(st["name"], ()) and not cfg["data"].get("parsing_root"):
            raise ConfigError(
                f"{model.variant!r} stage {st['name']!r} needs human-parsing maps: give "
                "--parsing-root (a folder of LIP label PNGs, one per image) / data.parsing_root"
            )


def select_trainable(model: ReIDModel, st: dict[str, Any]) -> NamedParameters:
    """Switch ``model`` to stage ``st`` and freeze all but its trainable parameters: the stage's
    ``trainable`` name prefixes (or the model's ``trainable_parameters(stage)``) minus its ``frozen``
    prefixes. Returns the trainable (name, parameter) pairs."""
    model.set_stage(st["name"])
    for p in model.parameters():
        p.requires_grad_(True)
    if st.get("trainable") is not None:
        prefixes = tuple(str(x) for x in st["trainable"])
        named = [(n, p) for n, p in model.named_parameters() if n.startswith(prefixes)]
    else:
        named = list(model.trainable_parameters(st["name"]))
    if st.get("frozen"):
        frozen = tuple(str(x) for x in st["frozen"])
        named = [(n, p) for n, p in named if not n.startswith(frozen)]
    keep = {id(p) for _, p in named}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return [(n, p) for n, p in named if p.requires_grad]


def freeze_bn_of_frozen(model: nn.Module) -> None:
    """Put every sub-module whose parameters are all frozen into eval mode (a frozen encoder's BatchNorm
    statistics and dropout then behave as at inference); parameter-less layers inside a trainable block
    (dropout, activations) keep training mode."""

    def visit(m: nn.Module) -> tuple[bool, bool]:  # (has parameters below, has trainable parameters below)
        own = list(m.parameters(recurse=False))
        has, trainable = bool(own), any(p.requires_grad for p in own)
        for c in m.children():
            h, t = visit(c)
            has, trainable = has or h, trainable or t
        if has and not trainable and m.training:
            m.eval()
        return has, trainable

    visit(model)


def build_losses(
    model: ReIDModel,
    st: dict[str, Any],
    device: torch.device,
    *,
    carried: dict[str, torch.Tensor] | None = None,
    procs: Processes = Processes(),
) -> LossSet:
    """The loss set of stage ``st``. ``carried``: the parameters (center-loss centers) the same stage
    name left in an earlier stage. Under DDP every rank takes rank 0's parameters."""
    from reidpipe.reid.losses import build_loss_set

    losses_cfg = model.default_losses(st["name"])
    if st.get("losses"):
        losses_cfg = deep_merge(losses_cfg, st["losses"])
    if not losses_cfg:
        raise ConfigError(f"stage {st['name']!r} has no losses (the model gives none and the config sets none)")
    loss_set = build_loss_set(losses_cfg, model=model).to(device)
    if carried is not None:
        loss_set.load_state_dict(carried, strict=False)
    if procs.world > 1:
        for t in loss_set.state_dict().values():
            torch.distributed.broadcast(t, src=0)
    return loss_set


def build_optimizers(
    trainable: NamedParameters, loss_set: LossSet, opt: dict[str, Any]
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """The stage's optimiser (:func:`reidpipe.trainers.optim.build_optimizer`) over ``trainable``, and
    the loss set's parameters: in that optimiser too, or in their own SGD at ``optimizer.loss_lr``."""
    loss_named = list(loss_set.trainable_parameters())
    own_lr = opt.get("loss_lr")
    if loss_named and own_lr is None:
        trainable = trainable + [(f"loss.{n}", p) for n, p in loss_named]
    optimizer = build_optimizer(trainable, opt)
    loss_optimizer = None
    if loss_named and own_lr is not None:
        loss_optimizer = torch.optim.SGD([p for _, p in loss_named], lr=float(own_lr))
    return optimizer, loss_optimizer


def wrap_distributed(model: nn.Module, device: torch.device, procs: Processes) -> nn.Module:
    """DDP around ``model`` when several processes train (unused parameters allowed: a stage may not
    use every branch); the model itself otherwise."""
    if procs.world <= 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def build_train_loader(
    cfg: dict[str, Any],
    st: dict[str, Any],
    stage_index: int,
    model: ReIDModel,
    dataset: ReIDDataset,
    *,
    device: torch.device,
    procs: Processes = Processes(),
) -> tuple[DataLoader, PKSampler | RandomBatchSampler]:
    """The loader of stage ``st`` over the training split: the stage's augmentations at the input size,
    batches from its sampler (``pk`` or ``random``, seeded by ``seed · 1000 + stage_index``, each rank
    its own share)."""
    from reidpipe.reid.datasets.images import ImageDataset
    from reidpipe.reid.transforms import AugmentConfig, ReIDTransform

    data = cfg["data"]
    size = tuple(data.get("input_size") or model.input_size)
    transform = ReIDTransform(size, model.pixel_mean, model.pixel_std, AugmentConfig.from_dict(st.get("augment")))
    ds = ImageDataset(dataset.train, transform, data.get("parsing_root"))
    sampler = build_sampler(st, ds.pids, seed=int(cfg["seed"]) * 1000 + stage_index, procs=procs)
    loader = DataLoader(
        ds,
        batch_sampler=sampler,
        num_workers=int(data.get("workers") or 0),
        collate_fn=collate,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    return loader, sampler


def build_sampler(
    st: dict[str, Any], pids: list[int], *, seed: int, procs: Processes = Processes()
) -> PKSampler | RandomBatchSampler:
    """The stage's batch sampler: ``pk`` (P identities × K images) or ``random`` (``batch_size``)."""
    from reidpipe.reid.sampler import PKSampler, RandomBatchSampler

    kind = st.get("sampler", "pk")
    if kind == "pk":
        return PKSampler(pids, p=int(st["p"]), k=int(st["k"]), seed=seed, rank=procs.rank, world_size=procs.world)
    if kind == "random":
        return RandomBatchSampler(
            len(pids), batch_size=int(st["batch_size"]), seed=seed, rank=procs.rank, world_size=procs.world
        )
    raise ConfigError(f"stage {st['name']!r}: unknown sampler {kind!r}; use pk or random")


def collate(items: list[dict]) -> dict[str, torch.Tensor]:
    """Stack samples into a batch: images, labels, cameras, indices (and parsing maps when present)."""
    out = {
        "images": torch.stack([it["images"] for it in items]),
        "labels": torch.tensor([it["labels"] for it in items], dtype=torch.long),
        "cams": torch.tensor([it["cams"] for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
    }
    if "parsing" in items[0]:
        out["parsing"] = torch.stack([it["parsing"] for it in items])
    return out
