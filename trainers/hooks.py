"""Hooks of the training engine: checkpointing, evaluation, logging, progress (detectron2 style).

A hook sees the trainer at fixed points: ``before_run``, ``before_stage``, ``before_epoch``,
``after_step(logs)``, ``after_epoch``, ``after_stage``, ``after_run``. Only the main process (rank 0)
writes files; every rank calls the hooks (a hook that must run on rank 0 only checks
``trainer.is_main``).
"""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from reidpipe.files import atomic_output, atomic_write_text

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter


class Hook:
    def before_run(self, tr) -> None: ...

    def before_stage(self, tr) -> None: ...

    def before_epoch(self, tr) -> None: ...

    def after_step(self, tr, logs: dict[str, float]) -> None: ...

    def after_epoch(self, tr) -> None: ...

    def after_stage(self, tr) -> None: ...

    def after_run(self, tr) -> None: ...


def write_json_atomic(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=True) + "\n")


class EpochStats(Hook):
    """Running means of the loss terms over an epoch (``tr.epoch_logs``), the epoch's time and its
    training speed in crops per second (forward + backward + step + data loading)."""

    def before_epoch(self, tr) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0
        self.crops = 0
        self.t0 = time.perf_counter()
        tr.epoch_logs = {}

    def after_step(self, tr, logs: dict[str, float]) -> None:
        self.count += 1
        self.crops += int(getattr(tr, "last_batch_size", 0))
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        tr.epoch_logs = {k: v / self.count for k, v in self.sums.items()}

    def after_epoch(self, tr) -> None:
        seconds = time.perf_counter() - self.t0
        tr.epoch_logs["epoch_seconds"] = seconds
        tr.epoch_logs["iterations"] = self.count
        tr.epoch_logs["crops_per_s"] = self.crops / seconds if seconds > 0 else 0.0
        if self.count and any(not math.isfinite(v) for v in tr.epoch_logs.values()):
            tr.log(f"warning: non-finite loss in stage {tr.stage_name} epoch {tr.epoch}")
        tr.log(
            f"{tr.stage_name} epoch {tr.epoch}: {seconds:.0f} s, {self.count} iterations, "
            f"{tr.epoch_logs['crops_per_s']:.1f} crops/s, loss {tr.epoch_logs.get('loss', float('nan')):.4f}"
        )


class EvalHook(Hook):
    """Evaluate every ``eval.every`` epochs (and at a stage's last epoch) when the stage has
    ``eval: true`` and the dataset has a query/gallery split; keep ``best.pt`` (highest mAP)."""

    def after_epoch(self, tr) -> None:
        st = tr.stage_cfg
        every = int(tr.cfg["eval"].get("every") or 0)
        last = tr.epoch == int(st["epochs"])
        if not st.get("eval", True) or not tr.dataset.query or not tr.dataset.gallery:
            return
        if not (last or (every > 0 and tr.epoch % every == 0)):
            return
        if tr.is_main:
            res = tr.evaluate()
            tr.last_eval = res
            tr.epoch_logs.update({k: res[k] for k in ("mAP", "rank1", "rank5", "rank10", "mINP")})
            tr.log(
                f"eval {tr.stage_name} epoch {tr.epoch}: mAP {res['mAP']:.4f} rank-1 {res['rank1']:.4f} "
                f"rank-5 {res['rank5']:.4f} rank-10 {res['rank10']:.4f}"
            )
            if tr.best is None or res["mAP"] > tr.best["mAP"]:
                tr.best = {"mAP": res["mAP"], "rank1": res["rank1"], "stage": tr.stage_name, "epoch": tr.epoch}
                tr.save("best.pt")
        tr.barrier()


class CheckpointHook(Hook):
    """``last.pt`` after every epoch (atomic), with everything ``--resume`` needs."""

    def after_epoch(self, tr) -> None:
        if tr.is_main:
            tr.save("last.pt")
            if tr.cfg["checkpoint"].get("keep_epochs"):
                tr.save(f"epoch_{tr.stage_name}_{tr.epoch:03d}.pt")
        tr.barrier()


class LoggerHook(Hook):
    """Per-epoch rows in ``metrics.csv`` and ``metrics.jsonl``; per-step scalars in TensorBoard."""

    def __init__(self) -> None:
        self.writer: SummaryWriter | None = None

    def before_run(self, tr) -> None:
        if tr.is_main and tr.cfg["log"].get("tensorboard"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(tr.run_dir / "tensorboard"))
            except ImportError:  # tensorboard not installed: CSV/JSON still written
                tr.log("tensorboard is not installed; writing metrics.csv / metrics.jsonl only")

    def after_step(self, tr, logs: dict[str, float]) -> None:
        every = int(tr.cfg["log"].get("every") or 0)
        if self.writer is not None and every and tr.global_step % every == 0:
            for k, v in logs.items():
                self.writer.add_scalar(f"train/{k}", v, tr.global_step)

    def after_epoch(self, tr) -> None:
        if not tr.is_main:
            return
        row = {"stage": tr.stage_name, "epoch": tr.epoch, "global_step": tr.global_step, "lr": tr.current_lr}
        row.update({k: (round(v, 6) if isinstance(v, float) else v) for k, v in tr.epoch_logs.items()})
        with open(tr.run_dir / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(row) + "\n")
        path = tr.run_dir / "metrics.csv"
        rows = []
        if path.exists():
            with open(path, newline="") as fh:
                rows = list(csv.DictReader(fh))
        rows.append({k: str(v) for k, v in row.items()})
        fields: list[str] = []
        for r in rows:
            fields += [k for k in r if k not in fields]
        with atomic_output(path, "metrics") as tmp, open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        if self.writer is not None:
            for k, v in row.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "global_step"):
                    self.writer.add_scalar(f"epoch/{k}", v, tr.global_step)
            self.writer.flush()

    def after_run(self, tr) -> None:
        if self.writer is not None:
            self.writer.close()


class ProgressHook(Hook):
    """A tqdm bar per epoch (main process only): loss, learning rate and crops/s so far."""

    def __init__(self) -> None:
        self.bar = None
        self.crops = 0
        self.t0 = 0.0

    def before_epoch(self, tr) -> None:
        self.crops, self.t0 = 0, time.perf_counter()
        if tr.is_main and tr.cfg["log"].get("progress"):
            from tqdm import tqdm

            self.bar = tqdm(
                total=tr.steps_per_epoch,
                desc=f"{tr.stage_name} {tr.epoch}/{tr.stage_cfg['epochs']}",
                dynamic_ncols=True,
                leave=False,
            )

    def after_step(self, tr, logs: dict[str, float]) -> None:
        self.crops += int(getattr(tr, "last_batch_size", 0))
        if self.bar is not None:
            rate = self.crops / max(time.perf_counter() - self.t0, 1e-9)
            self.bar.update(1)
            self.bar.set_postfix(
                loss=f"{logs.get('loss', float('nan')):.3f}", lr=f"{tr.current_lr:.2e}", crops_s=f"{rate:.1f}"
            )

    def after_epoch(self, tr) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _eval_features(tr):
    """Features of the dataset's query + gallery, the figures they score, and their (pids, cams)."""
    from reidpipe.trainers.evaluation import extract_model_features, score

    data, ev = tr.cfg["data"], tr.cfg["eval"]
    records = tr.dataset.query + tr.dataset.gallery
    feats = extract_model_features(
        tr.model, records, device=tr.device, batch_size=int(data["test_batch_size"]), amp=tr.amp
    )
    nq = len(tr.dataset.query)
    res = score(feats[:nq], feats[nq:], tr.dataset, metric=ev.get("metric", "euclidean"), max_rank=int(ev["max_rank"]))
    return feats, res, [r.pid for r in records], [r.camid for r in records]


def init_link_threshold(cfg: dict) -> float:
    """The fallback linking cosine of the model a run starts from: an ONNX file's own
    ``reidpipe.link_threshold``, else the pipeline's default for learned embeddings."""
    from reidpipe.pipeline.models.embed import LEARNED_LINK_THRESHOLD

    onnx = (cfg["model"].get("options") or {}).get("onnx")
    if onnx:
        from reidpipe.reid.export import read_onnx_metadata

        meta = read_onnx_metadata(onnx)
        if "reidpipe.link_threshold" in meta:
            return float(meta["reidpipe.link_threshold"])
    return LEARNED_LINK_THRESHOLD


class BaselineEvalHook(Hook):
    """With ``eval.before``: evaluate the model as built, before any training step (a fine-tuning
    run's "before"), once per run folder (``baseline.json``; a resumed run reads it back). It also
    records the share of different-people cross-camera pairs that reach the init model's linking
    threshold (``false_match_share``), from which the export sets the fine-tuned model's."""

    def before_run(self, tr) -> None:
        if not (tr.is_main and tr.cfg["eval"].get("before") and tr.dataset.query and tr.dataset.gallery):
            return
        path = tr.run_dir / "baseline.json"
        if path.is_file():
            tr.baseline = json.loads(path.read_text())
            return
        from reidpipe.trainers.evaluation import false_match_share

        t0 = time.perf_counter()
        feats, res, pids, cams = _eval_features(tr)
        res["eval_seconds"] = round(time.perf_counter() - t0, 1)
        res["link_threshold"] = init_link_threshold(tr.cfg)
        res["false_match_share"] = false_match_share(feats, pids, cams, res["link_threshold"])
        tr.baseline = res
        write_json_atomic(path, res)
        tr.log(f"before training: mAP {res['mAP']:.4f} rank-1 {res['rank1']:.4f} rank-5 {res['rank5']:.4f}")


class ExportHook(Hook):
    """With ``export.onnx``, when the run finished: ``model.onnx`` (the last epoch's model, with its
    pre-processing and fallback linking threshold in the metadata, ready for ``reidpipe run
    --reid-weights``) and ``metrics.json`` (mAP / CMC on the dataset's query/gallery before and after
    training, and the time training took). The threshold lets through the same share of
    different-people cross-camera pairs as the init model at its own threshold (see
    :func:`reidpipe.trainers.evaluation.threshold_for_share`)."""

    def after_run(self, tr) -> None:
        if not (tr.is_main and tr.cfg["export"].get("onnx") and getattr(tr, "finished", False)):
            return
        from reidpipe.reid.export import export_onnx
        from reidpipe.trainers.evaluation import threshold_for_share

        feats, after, pids, cams = _eval_features(tr)
        before = tr.baseline or {}
        if "false_match_share" in before:
            threshold = threshold_for_share(feats, pids, cams, float(before["false_match_share"]))
        else:
            threshold = init_link_threshold(tr.cfg)
        tr.model.to(memory_format=torch.contiguous_format)
        report = export_onnx(
            tr.model, tr.run_dir / "model.onnx", metadata={"reidpipe.link_threshold": f"{threshold:.4f}"}
        )
        metrics = {
            "dataset": tr.dataset.name,
            "data_root": str(tr.dataset.root),
            "protocol": "single query; same-identity same-camera gallery images removed (Market-1501)",
            "before": tr.baseline,
            "after": after,
            "link_threshold": round(threshold, 4),
            "train_seconds": round(getattr(tr, "train_seconds", 0.0), 1),
            "model": str(report.path),
            "onnx_max_abs_diff": report.max_abs_diff,
        }
        write_json_atomic(tr.run_dir / "metrics.json", metrics)
        tr.log(
            f"model.onnx written (link threshold {threshold:.3f}); mAP {before.get('mAP', float('nan')):.4f} -> "
            f"{after['mAP']:.4f}, rank-1 {before.get('rank1', float('nan')):.4f} -> {after['rank1']:.4f}"
        )
