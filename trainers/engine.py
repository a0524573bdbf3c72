"""The one training engine of every variant: a loop over the stages of the config.

A stage (one entry of ``cfg["stages"]``) names a model stage (``model.STAGES``), its epochs, sampler
(P×K or random), optimiser, per-epoch schedule with warm-up, loss set (the model's
``default_losses(stage)`` merged with the stage's ``losses``) and augmentations. CLIP-ReID's two
stages, or π-VL's identity → part prompt tuning → image stages, are entries of config.

Per stage the engine: switches the model (``set_stage``), trains only
``model.trainable_parameters(stage)`` (everything else frozen, and fully frozen sub-modules kept in
eval mode so their BatchNorm statistics do not move), builds optimiser(s) and loss set, and runs
epochs of ``step(batch)``: forward (float16 autocast on CUDA) → loss set → scaled backward → step.
Checkpointing, evaluation, logging and progress are hooks (``reidpipe.trainers.hooks``).

Exact resume: ``last.pt`` holds the model, loss-set parameters, optimiser and grad-scaler state,
every RNG state, the stage index and epoch, the best result and the step counter. Samplers and
augmentations draw from ``(seed, stage, epoch)`` only, so a resumed run repeats the uninterrupted
run bit for bit on CPU.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is initialised (NCCL on GPU,
gloo on CPU), the model is wrapped in DDP for each stage, every rank trains on its disjoint share of
each epoch's batches (the batch size is per process), loss-set parameter gradients are averaged, and
rank 0 evaluates and writes the run folder.
"""

from __future__ import annotations

import json
import os
import platform
import random
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from reidpipe.errors import CheckpointError, ConfigError, DatasetError, OutputError
from reidpipe.trainers.config import deep_merge, dump
from reidpipe.trainers.cpu import configure_threads
from reidpipe.trainers.hooks import (
    BaselineEvalHook,
    CheckpointHook,
    EpochStats,
    EvalHook,
    ExportHook,
    Hook,
    LoggerHook,
    ProgressHook,
    write_json_atomic,
)
from reidpipe.trainers.optim import build_optimizer, lr_at, set_lr

if TYPE_CHECKING:
    from reidpipe.reid.losses.base import LossSet
    from reidpipe.reid.sampler import PKSampler, RandomBatchSampler


# ------------------------------------------------------------------------------------------ helpers
def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    spec = str(spec or "auto")
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} asked for but CUDA is not available; use --set device=cpu")
    if spec == "cuda":
        return torch.device(f"cuda:{local_rank}")
    try:
        return torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"bad device {spec!r}; use auto, cpu, cuda or cuda:N") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    np_state = cast(tuple, np.random.get_state())  # legacy=True (the default): the tuple form
    st = {
        "python": _to_lists(random.getstate()),
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
    }
    if torch.cuda.is_available():
        st["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return st


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def set_rng_state(st: dict[str, Any]) -> None:
    random.setstate(_to_tuples(st["python"]))
    torch.set_rng_state(st["torch"])
    n = st["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


def environment() -> dict[str, Any]:
    from reidpipe import __version__

    env = {
        "reidpipe": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cudnn": torch.backends.cudnn.version(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "cpu_count": os.cpu_count(),
        "argv": sys.argv,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
    }
    for mod in ("torchvision", "open_clip", "numpy"):
        try:
            env[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):  # optional, informational only
            env[mod] = None
    return env


def _collate(items: list[dict]) -> dict[str, torch.Tensor]:
    out = {
        "images": torch.stack([it["images"] for it in items]),
        "labels": torch.tensor([it["labels"] for it in items], dtype=torch.long),
        "cams": torch.tensor([it["cams"] for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
    }
    if "parsing" in items[0]:
        out["parsing"] = torch.stack([it["parsing"] for it in items])
    return out


def _freeze_bn_of_frozen(model: nn.Module) -> None:
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


# ------------------------------------------------------------------------------------------- trainer
class Trainer:
    def __init__(self, cfg: dict, run_dir: str | Path, *, resume: bool = False, hooks: list[Hook] | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.is_main = self.rank == 0
        self.hooks = (
            hooks
            if hooks is not None
            else [
                BaselineEvalHook(),
                EpochStats(),
                ProgressHook(),
                EvalHook(),
                CheckpointHook(),
                LoggerHook(),
                ExportHook(),
            ]
        )
        self.best: dict | None = None
        self.baseline: dict | None = None  # evaluation before training (eval.before)
        self.finished = False
        self.last_saved: tuple[str, int] | None = None  # (stage, epoch) of the last last.pt written
        self.train_seconds = 0.0  # time in training epochs during this invocation
        self.last_eval: dict | None = None
        self.global_step = 0
        self.epoch = 0
        self.stage_index = 0
        self.current_lr = 0.0
        self.epoch_logs: dict[str, float] = {}
        self.steps_per_epoch = 0
        self.last_batch_size = 0
        self.memory_format = torch.contiguous_format
        self.optimizer: torch.optim.Optimizer | None = None
        self.loss_optimizer: torch.optim.Optimizer | None = None
        self.loss_set: LossSet | None = None
        self.sampler: PKSampler | RandomBatchSampler
        self._loss_states: dict[str, dict] = {}
        self._resume_ckpt: dict | None = None

    # ------------------------------------------------------------------ utilities
    def log(self, msg: str) -> None:
        if self.is_main:
            print(f"[reidpipe train] {msg}", file=sys.stderr, flush=True)
            with open(self.run_dir / "train.log", "a") as fh:
                fh.write(f"{time.strftime('%H:%M:%S')} {msg}\n")

    def barrier(self) -> None:
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()

    @property
    def stage_cfg(self) -> dict:
        return self.cfg["stages"][self.stage_index]

    @property
    def stage_name(self) -> str:
        return str(self.stage_cfg["name"])

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from reidpipe.reid.datasets.images import check_parsing_maps
        from reidpipe.reid.datasets.readers import build_dataset
        from reidpipe.reid.registry import create_model

        cfg = self.cfg
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and str(cfg["device"]) != "cpu" else "gloo"
            torch.distributed.init_process_group(backend=backend)
        self.device = resolve_device(cfg["device"], self.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = not cfg.get("deterministic")
            torch.backends.cudnn.deterministic = bool(cfg.get("deterministic"))
        self.amp = bool(cfg.get("amp")) and self.device.type == "cuda"
        self.cpu_settings = configure_threads(cfg.get("threads"))
        seed_everything(int(cfg["seed"]) + self.rank)
        if self.is_main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"cannot create run folder {self.run_dir}: {exc.strerror or exc}") from None
        data = cfg["data"]
        if not data.get("dataset") or not data.get("root"):
            raise ConfigError("data.dataset and data.root must be set (--dataset, --data-root)")
        self.dataset = build_dataset(data["dataset"], data["root"])
        if not self.dataset.train:
            raise DatasetError(
                f"{self.dataset.name} at {self.dataset.root} has no training split "
                "(a test-only dataset: train on another dataset and evaluate on this one)"
            )
        self.log("\n" + self.dataset.table())
        if data.get("parsing_root"):
            check_parsing_maps(data["parsing_root"], self.dataset.train)
        if not cfg["stages"]:
            raise ConfigError("the config has no stages")
        opts = dict(cfg["model"].get("options") or {})
        if data.get("input_size"):
            opts["input_size"] = tuple(int(v) for v in data["input_size"])
        self.model = create_model(
            cfg["model"]["variant"],
            num_classes=self.dataset.num_train_pids,
            pretrained=cfg["model"]["pretrained"],
            **opts,
        )
        if cfg["model"].get("init"):
            self._load_init(str(cfg["model"]["init"]))
        self.model.to(self.device)
        self.memory_format = torch.channels_last if cfg.get("channels_last") else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.log(
            f"CPU: {self.cpu_settings['threads']} torch threads, OMP_WAIT_POLICY={self.cpu_settings['omp_wait_policy']}"
        )
        extras = getattr(self.model, "BATCH_EXTRAS", {}) or {}
        for st in cfg["stages"]:
            if st["name"] not in self.model.STAGES:
                raise ConfigError(
                    f"stage {st['name']!r} of the config is not a stage of {self.model.variant!r} "
                    f"(its stages: {list(self.model.STAGES)})"
                )
            if st.get("sampler", "pk") == "pk" and self.dataset.num_train_pids < int(st["p"]):
                raise DatasetError(
                    f"{self.dataset.root}: {self.dataset.num_train_pids} training identities, fewer than the "
                    f"P={st['p']} identities of a P x K batch (stage {st['name']!r}); lower stages.*.p or add people"
                )
            if "parsing" in extras.get(st["name"], ()) and not data.get("parsing_root"):
                raise ConfigError(
                    f"{self.model.variant!r} stage {st['name']!r} needs human-parsing maps: give "
                    "--parsing-root (a folder of LIP label PNGs, one per image) / data.parsing_root"
                )
        if self.is_main:
            (self.run_dir / "config.yaml").write_text(dump(cfg))
            write_json_atomic(self.run_dir / "environment.json", {**environment(), "cpu": self.cpu_settings})
        self.start_stage, self.start_epoch = 0, 0
        if self.resume:
            self._load_resume()

    # ------------------------------------------------------------------ stages
    def _prepare_stage(self, restoring: dict | None = None) -> None:
        from reidpipe.reid.datasets.images import ImageDataset
        from reidpipe.reid.losses import build_loss_set
        from reidpipe.reid.sampler import PKSampler, RandomBatchSampler
        from reidpipe.reid.transforms import AugmentConfig, ReIDTransform

        st, model = self.stage_cfg, self.model
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
        named = [(n, p) for n, p in named if p.requires_grad]
        losses_cfg = model.default_losses(st["name"])
        if st.get("losses"):
            losses_cfg = deep_merge(losses_cfg, st["losses"])
        if not losses_cfg:
            raise ConfigError(f"stage {st['name']!r} has no losses (the model gives none and the config sets none)")
        self.loss_set = loss_set = build_loss_set(losses_cfg, model=model).to(self.device)
        if st["name"] in self._loss_states:  # same loss set seen in an earlier stage: keep its parameters
            loss_set.load_state_dict(self._loss_states[st["name"]], strict=False)
        if self.world > 1:  # same loss parameters (center-loss centers) on every rank
            for t in loss_set.state_dict().values():
                torch.distributed.broadcast(t, src=0)
        loss_named = list(loss_set.trainable_parameters())
        opt = st["optimizer"]
        if loss_named and opt.get("loss_lr") is None:
            named = named + [(f"loss.{n}", p) for n, p in loss_named]
        self.optimizer = optimizer = build_optimizer(named, opt)
        self.loss_optimizer = None
        if loss_named and opt.get("loss_lr") is not None:
            self.loss_optimizer = torch.optim.SGD([p for _, p in loss_named], lr=float(opt["loss_lr"]))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        if restoring is not None:
            optimizer.load_state_dict(restoring["optimizer"])
            if self.loss_optimizer is not None and restoring.get("loss_optimizer"):
                self.loss_optimizer.load_state_dict(restoring["loss_optimizer"])
            if restoring.get("scaler"):
                self.scaler.load_state_dict(restoring["scaler"])
            if restoring.get("loss_set"):
                loss_set.load_state_dict(restoring["loss_set"])
        self.train_model = model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
        size = tuple(self.cfg["data"].get("input_size") or model.input_size)
        aug = AugmentConfig.from_dict(st.get("augment"))
        transform = ReIDTransform(size, model.pixel_mean, model.pixel_std, aug)
        ds = ImageDataset(self.dataset.train, transform, self.cfg["data"].get("parsing_root"))
        seed = int(self.cfg["seed"]) * 1000 + self.stage_index
        if st.get("sampler", "pk") == "pk":
            self.sampler = PKSampler(
                ds.pids, p=int(st["p"]), k=int(st["k"]), seed=seed, rank=self.rank, world_size=self.world
            )
        elif st["sampler"] == "random":
            self.sampler = RandomBatchSampler(
                len(ds), batch_size=int(st["batch_size"]), seed=seed, rank=self.rank, world_size=self.world
            )
        else:
            raise ConfigError(f"stage {st['name']!r}: unknown sampler {st['sampler']!r}; use pk or random")
        workers = int(self.cfg["data"].get("workers") or 0)
        self.loader = DataLoader(
            ds,
            batch_sampler=self.sampler,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        self.log(
            f"stage {self.stage_index + 1}/{len(self.cfg['stages'])} {st['name']!r}: {st['epochs']} epochs, "
            f"{sum(p.numel() for _, p in named) / 1e6:.3f} M trainable parameters, "
            f"losses {list(loss_set.names)}, {len(self.sampler)} iterations/epoch"
        )

    def _prepared(self) -> tuple[torch.optim.Optimizer, LossSet]:
        """The stage's optimizer and loss set, which ``_prepare_stage`` sets before any step."""
        if self.optimizer is None or self.loss_set is None:
            raise RuntimeError("no training stage prepared yet (Trainer._prepare_stage comes first)")
        return self.optimizer, self.loss_set

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimisation step; returns the logged scalars."""
        dev = self.device
        batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
        batch["images"] = batch["images"].contiguous(memory_format=self.memory_format)
        extra = {"parsing": batch["parsing"]} if "parsing" in batch else {}
        optimizer, loss_set = self._prepared()
        self.last_batch_size = int(batch["images"].shape[0])
        with torch.autocast(device_type=dev.type, dtype=torch.float16, enabled=self.amp):
            out = self.train_model(batch["images"], labels=batch["labels"], cams=batch["cams"], **extra)
            res = loss_set(out, batch)
        optimizer.zero_grad(set_to_none=True)
        if self.loss_optimizer is not None:
            self.loss_optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(res.total).backward()
        clip = self.stage_cfg.get("grad_clip")
        if clip:
            self.scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], float(clip))
        if self.loss_optimizer is not None:
            self.scaler.unscale_(self.loss_optimizer)
            self._fix_loss_grads()
            self.scaler.step(self.loss_optimizer)
        elif self.world > 1:
            self._fix_loss_grads(scale=False)
        self.scaler.step(optimizer)
        self.scaler.update()
        self.global_step += 1
        logs = {"loss": float(res.total.detach())}
        logs.update({f"loss_{k}": float(v.detach()) for k, v in res.terms.items()})
        if out.logits is not None and out.logits.dim() == 2:
            logs["acc"] = float((out.logits.detach().argmax(1) == batch["labels"]).float().mean())
        return logs

    def _fix_loss_grads(self, scale: bool = True) -> None:
        by_weight = scale and self.stage_cfg["optimizer"].get("loss_grad_by_weight", True)
        loss_set = self._prepared()[1]
        for name, loss in loss_set.losses.items():
            w = loss_set.weights.get(name, 1.0)
            for p in loss.parameters():
                if p.grad is None:
                    continue
                if self.world > 1:
                    torch.distributed.all_reduce(p.grad)
                    p.grad.div_(self.world)
                if by_weight and w:
                    p.grad.mul_(1.0 / w)

    # ------------------------------------------------------------------ loop
    def train(self) -> dict:
        self.setup()
        for h in self.hooks:
            h.before_run(self)
        try:
            t0 = time.perf_counter()
            stopped = self._run_stages()
            self.train_seconds = time.perf_counter() - t0
            self.finished = not stopped
        except KeyboardInterrupt:
            if self.is_main:
                self.log(f"interrupted in epoch {self.epoch} of stage {self.stage_name!r}; " + self._resume_hint())
            raise
        for h in self.hooks:
            h.after_run(self)
        summary = {
            "run_dir": str(self.run_dir),
            "finished": not stopped,
            "best": self.best,
            "last_eval": self.last_eval,
            "global_step": self.global_step,
        }
        if self.is_main:
            write_json_atomic(self.run_dir / "summary.json", summary)
            self.log(
                ("stopped (stop_after_epochs); continue with --resume" if stopped else "finished")
                + f"; run folder {self.run_dir}"
            )
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
        return summary

    def _resume_hint(self) -> str:
        if self.last_saved is None:
            return "no epoch was saved in this invocation (last.pt, if any, is from before)"
        stage, epoch = self.last_saved
        return f"last.pt keeps epoch {epoch} of stage {stage!r}; continue with --resume"

    def _run_stages(self) -> bool:
        """Every stage from the resume point; True when ``stop_after_epochs`` ended the run early."""
        stop_after = self.cfg.get("stop_after_epochs")
        done_now = 0
        stopped = False
        for si in range(self.start_stage, len(self.cfg["stages"])):
            self.stage_index = si
            epochs = int(self.stage_cfg["epochs"])
            start = self.start_epoch if si == self.start_stage else 0
            if stop_after is not None and done_now >= int(stop_after) and start < epochs:
                stopped = True
                break
            ck = self._resume_ckpt if si == self.start_stage else None
            if ck is not None and start == 0 and ck.get("rng"):
                set_rng_state(ck["rng"])  # resuming at a stage boundary: RNG as before the stage was prepared
            self._prepare_stage(restoring=ck if ck is not None and start > 0 else None)
            if ck is not None and start > 0 and ck.get("rng"):
                set_rng_state(ck["rng"])  # resuming mid-stage: RNG as at the end of the last epoch
            for h in self.hooks:
                h.before_stage(self)
            for e in range(start + 1, epochs + 1):
                if stop_after is not None and done_now >= int(stop_after):
                    stopped = True
                    break
                self.epoch = e
                self.run_epoch()
                done_now += 1
            if stopped:
                break
            self._loss_states[self.stage_name] = {
                k: v.detach().clone() for k, v in self._prepared()[1].state_dict().items()
            }
            for h in self.hooks:
                h.after_stage(self)
        return stopped

    def run_epoch(self) -> None:
        st = self.stage_cfg
        self.sampler.set_epoch(self.epoch)
        self.steps_per_epoch = len(self.sampler)
        self.current_lr = lr_at(st["schedule"], float(st["optimizer"]["lr"]), self.epoch, int(st["epochs"]))
        set_lr(self._prepared()[0], self.current_lr)
        self.model.train()
        _freeze_bn_of_frozen(self.model)
        for h in self.hooks:
            h.before_epoch(self)
        for batch in self.loader:
            logs = self.step(batch)
            for h in self.hooks:
                h.after_step(self, logs)
        for h in self.hooks:
            h.after_epoch(self)

    # ------------------------------------------------------------------ evaluation / checkpoints
    def evaluate(self) -> dict:
        from reidpipe.trainers.evaluation import evaluate_model

        ev, data = self.cfg["eval"], self.cfg["data"]
        return evaluate_model(
            self.model,
            self.dataset,
            device=self.device,
            batch_size=int(data["test_batch_size"]),
            workers=int(data.get("workers") or 0),
            rerank=bool(ev.get("rerank")),
            metric=ev.get("metric", "euclidean"),
            amp=self.amp,
            k1=int(ev["rerank_k1"]),
            k2=int(ev["rerank_k2"]),
            lambda_value=float(ev["rerank_lambda"]),
            max_rank=int(ev["max_rank"]),
        )

    def save(self, name: str) -> Path:
        from reidpipe.reid.checkpoint import save_checkpoint

        optimizer, loss_set = self._prepared()

        state = {
            "training": {
                "stage_index": self.stage_index,
                "stage": self.stage_name,
                "epoch": self.epoch,
                "stage_epochs": int(self.stage_cfg["epochs"]),
                "global_step": self.global_step,
                "best": self.best,
                "config": self.cfg,
                "world_size": self.world,
            },
            "optimizer": optimizer.state_dict(),
            "loss_optimizer": self.loss_optimizer.state_dict() if self.loss_optimizer is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "loss_set": loss_set.state_dict(),
            "loss_states": self._loss_states,
            "rng": rng_state(),
            "metrics": self.last_eval and {k: v for k, v in self.last_eval.items() if k != "cmc"},
        }
        path = save_checkpoint(self.run_dir / name, self.model, **state)
        if name == "last.pt":
            self.last_saved = (self.stage_name, self.epoch)
        return path

    def _load_init(self, path: str) -> None:
        """Start from a reidpipe checkpoint of this variant: every tensor of the same name and shape is
        loaded; the others (a classifier sized to another training set) stay as built."""
        from reidpipe.reid.checkpoint import read_checkpoint

        ck = read_checkpoint(path, map_location="cpu")
        if ck["variant"] != self.model.variant:
            raise CheckpointError(
                f"model.init {path} is a {ck['variant']!r} model, this run builds {self.model.variant!r}"
            )
        own = self.model.state_dict()
        take = {k: v for k, v in ck["state_dict"].items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
        if not take:
            raise CheckpointError(f"model.init {path}: no tensor fits this run's {self.model.variant!r} model")
        self.model.load_state_dict(take, strict=False)
        left = sorted(set(own) - set(take))
        self.log(f"init from {path}: {len(take)} tensors loaded, {len(left)} as built {left[:3]}")

    def _load_resume(self) -> None:
        from reidpipe.reid.checkpoint import read_checkpoint

        path = self.run_dir / "last.pt"
        self._resume_ckpt = None
        if not path.exists():
            raise CheckpointError(f"--resume: no checkpoint {path} to continue from")
        ck = read_checkpoint(path, map_location="cpu")
        tr = ck.get("training")
        if not isinstance(tr, dict):
            raise CheckpointError(f"--resume: {path} holds no training state (a weights-only checkpoint)")
        if ck["variant"] != self.model.variant or int(ck["num_classes"]) != self.model.num_classes:
            raise CheckpointError(
                f"--resume: {path} is a {ck['variant']!r} model with {ck['num_classes']} classes, "
                f"this run builds {self.model.variant!r} with {self.model.num_classes}"
            )
        try:
            self.model.load_state_dict(ck["state_dict"])
        except RuntimeError as exc:
            raise CheckpointError(f"--resume: {path} does not match this run's model ({str(exc)[:200]})") from None
        self.model.to(self.device)
        names = [s["name"] for s in self.cfg["stages"]]
        si = int(tr["stage_index"])
        if si >= len(names) or names[si] != tr["stage"]:
            raise CheckpointError(
                f"--resume: {path} stopped in stage {tr['stage']!r} (#{si + 1}), "
                f"which this config does not have at that place (stages: {names})"
            )
        self.global_step = int(tr["global_step"])
        self.best = tr.get("best")
        self._loss_states = ck.get("loss_states") or {}
        epoch = int(tr["epoch"])
        if epoch >= int(self.cfg["stages"][si]["epochs"]):
            self.start_stage, self.start_epoch = si + 1, 0
            self._loss_states[tr["stage"]] = ck.get("loss_set") or {}
        else:
            self.start_stage, self.start_epoch = si, epoch
        self._resume_ckpt = ck
        self.log(f"resuming from {path}: stage {tr['stage']!r} epoch {epoch} done (step {self.global_step})")


def train(cfg: dict, run_dir: str | Path, resume: bool = False) -> dict:
    return Trainer(cfg, run_dir, resume=resume).train()


def write_summary(path: Path, data: dict) -> None:
    write_json_atomic(path, json.loads(json.dumps(data, default=str)))
