"""The one training engine of every variant: a loop over the stages of the config.

A stage (one entry of ``cfg["stages"]``) names a model stage (``model.STAGES``), its epochs, sampler
(P×K or random), optimiser, per-epoch schedule with warm-up, loss set (the model's
``default_losses(stage)`` merged with the stage's ``losses``) and augmentations. CLIP-ReID's two
stages, or π-VL's identity → part prompt tuning → image stages, are entries of config.

The engine's parts, each in one place:

- :meth:`Trainer.setup`: device and processes (``trainers/runtime.py``), dataset and model
  (``trainers/build.py``), the run folder, the resume point (``trainers/checkpoint.py``);
- :meth:`Trainer.prepare_stage`: switch the model to the stage, train only its trainable parameters
  (everything else frozen, fully frozen sub-modules kept in eval mode so their BatchNorm statistics do
  not move), build its loss set, optimiser(s), DDP wrapper and loader (``trainers/build.py``);
- :meth:`Trainer.run_stages` → :meth:`Trainer.run_epoch` → :meth:`Trainer.run_step`: forward (float16
  autocast on CUDA) → loss set → scaled backward → step → the hooks' ``after_step``;
- checkpointing, evaluation, logging and progress are hooks (``trainers/hooks.py``); what a checkpoint
  holds and how ``--resume`` continues bit for bit is ``trainers/checkpoint.py``.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DDP for each stage,
every rank trains on its disjoint share of each epoch's batches (the batch size is per process),
loss-set parameter gradients are averaged, and rank 0 evaluates and writes the run folder.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from reidpipe.errors import ConfigError, OutputError
from reidpipe.signals import act_on, hold_signals
from reidpipe.trainers.build import (
    StageRun,
    build_losses,
    build_model,
    build_optimizers,
    build_train_dataset,
    build_train_loader,
    check_parsing,
    check_stages,
    freeze_bn_of_frozen,
    memory_format,
    select_trainable,
    wrap_distributed,
)
from reidpipe.trainers.checkpoint import (
    ResumePoint,
    read_resume_point,
    restore_rng,
    restore_stage,
    save_training_checkpoint,
)
from reidpipe.trainers.config import dump
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
from reidpipe.trainers.optim import lr_at, set_lr
from reidpipe.trainers.runtime import (
    Processes,
    environment,
    resolve_device,
    seed_everything,
    start_processes,
    use_device,
)

__all__ = ["Trainer", "default_hooks", "resolve_device", "seed_everything", "train"]


def default_hooks() -> list[Hook]:
    """The hooks of a training run, in the order they see each event."""
    return [
        BaselineEvalHook(),
        EpochStats(),
        ProgressHook(),
        EvalHook(),
        CheckpointHook(),
        LoggerHook(),
        ExportHook(),
    ]


class Trainer:
    def __init__(self, cfg: dict, run_dir: str | Path, *, resume: bool = False, hooks: list[Hook] | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.procs = Processes.from_environment()
        self.world, self.rank, self.local_rank = self.procs.world, self.procs.rank, self.procs.local_rank
        self.is_main = self.procs.is_main
        self.hooks = hooks if hooks is not None else default_hooks()
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
        self.memory_format = memory_format(cfg)
        self.stage_run: StageRun | None = None
        self.start = ResumePoint()
        self._loss_states: dict[str, dict] = {}  # loss-set parameters each finished stage left

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

    @property
    def stage(self) -> StageRun:
        """The current stage's optimisers, loss set and loader (``prepare_stage`` builds them)."""
        if self.stage_run is None:
            raise RuntimeError("no training stage prepared yet (Trainer.prepare_stage comes first)")
        return self.stage_run

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        """Device, processes and seed; dataset, model and stage checks; the run folder; the resume point."""
        cfg = self.cfg
        self._start_runtime()
        self._make_run_dir()
        self.dataset = build_train_dataset(cfg["data"])
        self.log("\n" + self.dataset.table())
        check_parsing(cfg["data"], self.dataset)
        if not cfg["stages"]:
            raise ConfigError("the config has no stages")
        self.model = build_model(cfg, self.dataset.num_train_pids, self.device, self.log)
        self.log(
            f"CPU: {self.cpu_settings['threads']} torch threads, OMP_WAIT_POLICY={self.cpu_settings['omp_wait_policy']}"
        )
        check_stages(cfg, self.model, self.dataset)
        self._write_run_record()
        if self.resume:
            self._load_resume_point()

    def _start_runtime(self) -> None:
        cfg = self.cfg
        start_processes(self.procs, cfg["device"])
        self.device = resolve_device(cfg["device"], self.local_rank)
        use_device(self.device, bool(cfg.get("deterministic")))
        self.amp = bool(cfg.get("amp")) and self.device.type == "cuda"
        self.cpu_settings = configure_threads(cfg.get("threads"))
        seed_everything(int(cfg["seed"]) + self.rank)

    def _make_run_dir(self) -> None:
        if self.is_main:
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"cannot create run folder {self.run_dir}: {exc.strerror or exc}") from None

    def _write_run_record(self) -> None:
        """``config.yaml`` (the resolved config) and ``environment.json`` in the run folder."""
        if self.is_main:
            (self.run_dir / "config.yaml").write_text(dump(self.cfg))
            write_json_atomic(self.run_dir / "environment.json", {**environment(), "cpu": self.cpu_settings})

    def _load_resume_point(self) -> None:
        """``--resume``: the model from ``last.pt``, and the stage, epoch and counters to continue from."""
        self.start = read_resume_point(self.run_dir / "last.pt", self.model, self.cfg["stages"])
        self.global_step, self.best = self.start.global_step, self.start.best
        self._loss_states = self.start.loss_states
        self.log(self.start.message)

    # ------------------------------------------------------------------ stages
    def prepare_stage(self, restoring: dict | None = None) -> None:
        """Build what the current stage trains with; ``restoring``: the checkpoint of a stage resumed
        in its middle (its optimiser, grad-scaler and loss-set state)."""
        st, model = self.stage_cfg, self.model
        trainable = select_trainable(model, st)
        loss_set = build_losses(model, st, self.device, carried=self._loss_states.get(st["name"]), procs=self.procs)
        optimizer, loss_optimizer = build_optimizers(trainable, loss_set, st["optimizer"])
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        train_model = wrap_distributed(model, self.device, self.procs)
        loader, sampler = build_train_loader(
            self.cfg, st, self.stage_index, model, self.dataset, device=self.device, procs=self.procs
        )
        self.stage_run = StageRun(trainable, loss_set, optimizer, loss_optimizer, scaler, train_model, sampler, loader)
        if restoring is not None:
            restore_stage(self.stage_run, restoring)
        self.log(
            f"stage {self.stage_index + 1}/{len(self.cfg['stages'])} {st['name']!r}: {st['epochs']} epochs, "
            f"{sum(p.numel() for _, p in trainable) / 1e6:.3f} M trainable parameters, "
            f"losses {list(loss_set.names)}, {len(sampler)} iterations/epoch"
        )

    def run_stages(self) -> bool:
        """Every stage from the resume point; True when ``stop_after_epochs`` ended the run early."""
        stop_after = self.cfg.get("stop_after_epochs")
        budget = None if stop_after is None else int(stop_after)  # epochs this invocation may still run
        for si in range(self.start.stage_index, len(self.cfg["stages"])):
            self.stage_index = si
            first, epochs = self.start.start_epoch(si) + 1, int(self.stage_cfg["epochs"])
            if budget is not None and budget <= 0 and first <= epochs:
                return True
            self._enter_stage(self.start.checkpoint_for(si), resumed_mid_stage=first > 1)
            for e in range(first, epochs + 1):
                if budget is not None and budget <= 0:
                    return True
                self.epoch = e
                self.run_epoch()
                budget = None if budget is None else budget - 1
            self._loss_states[self.stage_name] = {
                k: v.detach().clone() for k, v in self.stage.loss_set.state_dict().items()
            }
            for h in self.hooks:
                h.after_stage(self)
        return False

    def _enter_stage(self, ck: dict | None, *, resumed_mid_stage: bool) -> None:
        """Prepare the stage with the RNG where the uninterrupted run had it (``trainers/checkpoint.py``)."""
        if not resumed_mid_stage:
            restore_rng(ck)  # at a stage boundary: the RNG as before the stage was prepared
        self.prepare_stage(restoring=ck if resumed_mid_stage else None)
        if resumed_mid_stage:
            restore_rng(ck)  # mid-stage: the RNG as at the end of the last saved epoch
        for h in self.hooks:
            h.before_stage(self)

    def run_epoch(self) -> None:
        """One epoch of the current stage: its learning rate, then a step per batch."""
        st, stage = self.stage_cfg, self.stage
        stage.sampler.set_epoch(self.epoch)
        self.steps_per_epoch = len(stage.sampler)
        self.current_lr = lr_at(st["schedule"], float(st["optimizer"]["lr"]), self.epoch, int(st["epochs"]))
        set_lr(stage.optimizer, self.current_lr)
        self.model.train()
        freeze_bn_of_frozen(self.model)
        for h in self.hooks:
            h.before_epoch(self)
        for batch in stage.loader:
            self.run_step(batch)
        for h in self.hooks:
            h.after_epoch(self)

    def run_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimisation step: forward → loss set → backward → step → hooks; returns the logged scalars."""
        stage = self.stage
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        batch["images"] = batch["images"].contiguous(memory_format=self.memory_format)
        extra = {"parsing": batch["parsing"]} if "parsing" in batch else {}
        self.last_batch_size = int(batch["images"].shape[0])
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp):
            out = stage.train_model(batch["images"], labels=batch["labels"], cams=batch["cams"], **extra)
            res = stage.loss_set(out, batch)
        self._backward_and_step(res.total)
        self.global_step += 1
        logs = {"loss": float(res.total.detach())}
        logs.update({f"loss_{k}": float(v.detach()) for k, v in res.terms.items()})
        if out.logits is not None and out.logits.dim() == 2:
            logs["acc"] = float((out.logits.detach().argmax(1) == batch["labels"]).float().mean())
        for h in self.hooks:
            h.after_step(self, logs)
        return logs

    def _backward_and_step(self, total: torch.Tensor) -> None:
        """Scaled backward; gradient clipping (``grad_clip``); the loss set's own optimiser (its gradients
        averaged over ranks and divided by their loss weight) and the main one step."""
        stage = self.stage
        optimizer, scaler = stage.optimizer, stage.scaler
        optimizer.zero_grad(set_to_none=True)
        if stage.loss_optimizer is not None:
            stage.loss_optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        clip = self.stage_cfg.get("grad_clip")
        if clip:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], float(clip))
        if stage.loss_optimizer is not None:
            scaler.unscale_(stage.loss_optimizer)
            self._fix_loss_grads()
            scaler.step(stage.loss_optimizer)
        elif self.world > 1:
            self._fix_loss_grads(scale=False)
        scaler.step(optimizer)
        scaler.update()

    def _fix_loss_grads(self, scale: bool = True) -> None:
        """Loss-set parameter gradients: averaged over ranks; with ``scale`` (their own optimiser) and
        ``loss_grad_by_weight``, divided by the loss weight, so the weight scales only the features'
        gradient (BoT's center loss)."""
        by_weight = scale and self.stage_cfg["optimizer"].get("loss_grad_by_weight", True)
        loss_set = self.stage.loss_set
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

    # ------------------------------------------------------------------ run
    def train(self) -> dict:
        """Set up, run every stage (hooks around), write ``summary.json``; returns the summary."""
        self.setup()
        for h in self.hooks:
            h.before_run(self)
        try:
            t0 = time.perf_counter()
            stopped = self.run_stages()
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

    # ------------------------------------------------------------------ evaluation / checkpoints
    def evaluate(self) -> dict:
        """mAP / CMC of the model on the dataset's query and gallery (``eval`` settings of the config)."""
        from reidpipe.trainers.evaluation import evaluate_run

        return evaluate_run(self.model, self.dataset, self.cfg, device=self.device, amp=self.amp)

    def save(self, name: str) -> Path:
        """Write checkpoint ``name`` in the run folder (``trainers/checkpoint.py``: what it holds)."""
        progress = {
            "stage_index": self.stage_index,
            "stage": self.stage_name,
            "epoch": self.epoch,
            "stage_epochs": int(self.stage_cfg["epochs"]),
            "global_step": self.global_step,
            "best": self.best,
            "config": self.cfg,
            "world_size": self.world,
        }
        # a stop signal while the file is written waits until it is also recorded as saved: acted on
        # in between, it found last.pt on disk and said that no epoch was saved
        held = hold_signals()
        try:
            path = save_training_checkpoint(
                self.run_dir / name,
                self.model,
                self.stage,
                progress=progress,
                loss_states=self._loss_states,
                metrics=self.last_eval,
            )
            if name == "last.pt":
                self.last_saved = (self.stage_name, self.epoch)
        finally:
            late = held.release()
        act_on(late)  # now, with the checkpoint written and recorded
        return path


def train(cfg: dict, run_dir: str | Path, resume: bool = False) -> dict:
    return Trainer(cfg, run_dir, resume=resume).train()
