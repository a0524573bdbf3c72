"""``reidpipe train``: train a ReID variant on a dataset with its paper's recipe, or fine-tune an
existing embedder (``--init MODEL``) and export it for ``reidpipe run``.

``--init`` and ``--variant``: an ONNX ReID model or a torchreid OSNet state dict is fine-tuned as the
``finetune`` variant (its trunk + BNNeck + ID classifier; recipe ``configs/variants/finetune.yaml``),
so ``--variant`` may be left out or must be ``finetune``. A reidpipe checkpoint continues as its own
variant (``--variant`` left out or equal to it) with its recipe, on the new dataset. The paper
variants build their own trunks (CLIP, ResNet-50): they take a checkpoint of themselves as ``--init``,
or their backbone's weights as ``--set model.pretrained=FILE``, never an OSNet or ONNX embedder.
"""

from __future__ import annotations

import argparse
import errno
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NAME = "train"
HELP = "train a ReID model variant on a ReID dataset, or fine-tune an existing embedder (--init MODEL)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", default=None, help="model variant: clipreid, mscsa_tgi, can_cma, pivl, mfa, finetune")
    p.add_argument(
        "--init",
        default=None,
        metavar="MODEL",
        help="start from this model: an ONNX ReID model, a torchreid OSNet .pth or a reidpipe checkpoint; "
        "the run ends with OUTPUT/model.onnx and OUTPUT/metrics.json (before/after)",
    )
    p.add_argument(
        "--dataset",
        required=True,
        help="market1501, dukemtmcreid, msmt17, cuhk03_labeled, cuhk03_detected, occluded_duke, custom",
    )
    p.add_argument("--data-root", required=True, help="folder holding the dataset in its official layout")
    p.add_argument("--output", default=None, help="run folder (default runs/<variant>_<dataset>_<date-time>)")
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="extra YAML file merged after the variant and dataset configs (repeatable)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set stages.*.epochs=1 --set model.pretrained=false",
    )
    p.add_argument(
        "--parsing-root", default=None, help="folder of LIP parsing PNGs (pivl); same as --set data.parsing_root="
    )
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (same as --set device=)")
    p.add_argument("--resume", action="store_true", help="continue the run in --output from its last.pt")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


@contextmanager
def _run_folder_writes(out: Path) -> Iterator[None]:
    """A write into the run folder that fails for want of room or rights (the logs, metrics,
    TensorBoard files; checkpoints say it themselves) is an ``OutputError`` naming the folder, not a
    traceback; the last complete checkpoint stays."""
    from reidpipe.errors import OutputError

    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG):
            raise
        where = exc.filename or out
        raise OutputError(f"cannot write the training run's {where} ({exc.strerror})") from None


def main(args: argparse.Namespace) -> int:
    from reidpipe.errors import UsageError
    from reidpipe.trainers.config import dump
    from reidpipe.trainers.cpu import prefer_passive_openmp

    prefer_passive_openmp()  # before torch loads (trainers/cpu.py)
    variant, overrides = _model_choice(args)
    overrides += list(args.overrides)
    overrides.append(f"data.root={args.data_root}")
    if args.parsing_root:
        overrides.append(f"data.parsing_root={args.parsing_root}")
    if args.device:
        overrides.append(f"device={args.device}")
    if args.resume and not args.output:
        raise UsageError("--resume needs --output (the run folder to continue)")
    out = (
        Path(args.output)
        if args.output
        else Path("runs") / f"{variant}_{args.dataset}_{time.strftime('%Y%m%d-%H%M%S')}"
    )
    cfg = run_config(variant, args.dataset, overrides, args.config, out, args.resume)
    if args.print_config:
        print(dump(cfg), end="")
        return 0
    summary = fit(cfg, out, args.resume)
    best = summary.get("best")
    if best:
        print(
            f"best mAP {best['mAP']:.4f} rank-1 {best['rank1']:.4f} ({best['stage']} epoch {best['epoch']}); "
            f"run folder {out}"
        )
    else:
        print(f"run folder {out}")
    if (out / "model.onnx").is_file() and summary.get("finished"):
        print(
            f"fine-tuned model {out / 'model.onnx'} (reidpipe run --reid-weights); before/after in {out / 'metrics.json'}"
        )
    return 0


def run_config(
    variant: str, dataset: str, overrides: list[str], files: list[str | Path], out: Path, resume: bool
) -> dict:
    """The training config: with ``resume`` and a ``config.yaml`` in ``out``, the run's own resolved
    config with this invocation's ``overrides`` on top (it must be the same variant and dataset),
    else the package configs, ``files`` and ``overrides``."""
    from reidpipe.errors import UsageError
    from reidpipe.trainers.config import load_config, read_yaml

    saved = out / "config.yaml"
    if not (resume and saved.is_file()):
        return load_config(variant, dataset, overrides, files=files)
    cfg = load_config(overrides=overrides, start=read_yaml(saved))
    if cfg["model"]["variant"] != variant or cfg["data"]["dataset"] != dataset:
        raise UsageError(
            f"--resume: {out} is a {cfg['model']['variant']} / {cfg['data']['dataset']} run, not {variant} / {dataset}"
        )
    return cfg


def fit(cfg: dict, out: Path, resume: bool) -> dict:
    """Train with the one engine (interrupts keep the last finished epoch in ``out/last.pt``)."""
    from reidpipe.trainers.engine import Trainer

    with _run_folder_writes(out):
        return Trainer(cfg, out, resume=resume).train()


def fine_tune_overrides(init) -> list[str]:
    """The ``--set`` items of fine-tuning an ``--init`` model (``reid.init_model.InitModel``): its
    model, the "before" evaluation and the export of ``model.onnx``."""
    return init.overrides() + ["eval.before=true", "export.onnx=true"]


def _model_choice(args: argparse.Namespace) -> tuple[str, list[str]]:
    """The variant to build and the ``--set`` items of ``--init`` (module docstring: how they combine)."""
    from reidpipe.errors import UsageError

    if args.init is None:
        if not args.variant:
            raise UsageError("give --variant (train a paper variant) or --init MODEL (fine-tune an embedder)")
        return args.variant, []
    from reidpipe.reid.init_model import resolve_init

    init = resolve_init(args.init)
    if args.variant and args.variant != init.variant:
        if init.kind == "checkpoint":
            raise UsageError(
                f"--init {args.init} is a {init.variant!r} checkpoint; it continues as --variant {init.variant}"
            )
        raise UsageError(
            f"--init {args.init} (an {init.kind} embedder) is fine-tuned as --variant finetune; "
            f"{args.variant!r} builds its own trunk (its backbone weights: --set model.pretrained=FILE)"
        )
    return init.variant, fine_tune_overrides(init)
