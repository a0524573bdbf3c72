"""Short deterministic training runs of the engine, recorded step by step (the reference of
``test_trainers_reference.py``).

Each case trains a tiny model through ``reidpipe train`` on a synthetic Market-1501-layout dataset
(CPU, one thread, fixed seed) and records every step's logged scalars (loss terms, accuracy), every
epoch's learning rate, the evaluations and a checksum of the final weights. The cases cover the
fine-tuning path (``--init`` an OSNet state dict: frozen stem, channels-last, evaluation before
training), a two-stage variant (CLIP-ReID: prompt tuning, then the image encoder), a three-stage one
with parsing maps (π-VL) and one with a loss-set optimiser (MFA: center loss, its own SGD).

``python tests/unit/trainers/reference_runs.py`` rewrites ``reference_runs.json``: do that only for
a change meant to alter training, and say so in the commit.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference_runs.json"

COMMON = [
    "data.workers=0",
    "log.progress=false",
    "log.tensorboard=false",
    "device=cpu",
    "threads=1",
    "stages.*.p=2",
    "stages.*.k=2",
    "stages.*.schedule.warmup_epochs=1",
]
TINY = ["model.pretrained=false", "model.options.tiny=true"]

# case -> (variant or None for --init, extra --set items)
CASES: dict[str, tuple[str | None, list[str]]] = {
    "finetune_init": (None, ["stages.*.epochs=2", "data.input_size=[64,32]", "export.onnx=false"]),
    "clipreid": ("clipreid", [*TINY, "stages.*.epochs=1"]),
    "pivl": ("pivl", [*TINY, "stages.*.epochs=1"]),
    "mfa": ("mfa", [*TINY, "stages.*.epochs=2", "eval.every=1", "stages.*.grad_clip=5.0"]),
}


def make_data(root: Path) -> dict[str, Path]:
    """The synthetic dataset, its parsing maps and a torchreid-style OSNet state dict to fine-tune."""
    import torch

    from reidpipe.reid.backbones.osnet import build_osnet
    from reidpipe.reid.datasets.synthetic import write_dataset

    data = write_dataset(
        "market1501", root / "reid", ids=4, test_ids=3, per_cam=2, cams=2, size=(64, 32), parsing_root=root / "parsing"
    )
    torch.manual_seed(0)
    state = build_osnet(0.25).state_dict()
    state["classifier.weight"] = torch.zeros(10, 512)
    state["classifier.bias"] = torch.zeros(10)
    torch.save(state, root / "osnet.pth")
    return {"market": data, "parsing": root / "parsing", "pth": root / "osnet.pth"}


class StepRecorder:
    """A hook that keeps every step's logs and every epoch's learning rate and evaluation."""

    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []
        self.epochs: list[dict[str, Any]] = []

    def before_run(self, tr) -> None: ...

    def before_stage(self, tr) -> None: ...

    def before_epoch(self, tr) -> None: ...

    def after_step(self, tr, logs: dict[str, float]) -> None:
        self.steps.append({"stage": tr.stage_name, "epoch": tr.epoch, **logs})

    def after_epoch(self, tr) -> None:
        keep = ("loss", "mAP", "rank1")
        self.epochs.append(
            {"stage": tr.stage_name, "epoch": tr.epoch, "lr": tr.current_lr}
            | {k: tr.epoch_logs[k] for k in keep if k in tr.epoch_logs}
        )

    def after_stage(self, tr) -> None: ...

    def after_run(self, tr) -> None: ...


def run_case(name: str, data: dict[str, Path], out: Path) -> dict[str, Any]:
    """Train case ``name`` into ``out``; its steps, epochs, evaluations and final-weight checksum."""
    import torch

    from reidpipe.cli import main as cli
    from reidpipe.trainers import engine

    variant, extra = CASES[name]
    args = ["train", "--dataset", "market1501", "--data-root", str(data["market"]), "--output", str(out)]
    args += ["--init", str(data["pth"])] if variant is None else ["--variant", variant]
    if variant == "pivl":
        args += ["--parsing-root", str(data["parsing"])]
    for item in COMMON + extra:
        args += ["--set", item]
    recorder = StepRecorder()
    original = engine.Trainer.__init__

    def with_recorder(self, *a, **k):
        original(self, *a, **k)
        self.hooks.append(recorder)

    engine.Trainer.__init__ = with_recorder  # type: ignore[method-assign]
    try:
        rc = cli(args)
    finally:
        engine.Trainer.__init__ = original  # type: ignore[method-assign]
    if rc != 0:
        raise RuntimeError(f"case {name}: reidpipe train exited {rc}")
    summary = json.loads((out / "summary.json").read_text())
    state = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    checksum = float(sum(v.double().abs().sum() for v in state.values() if v.is_floating_point()))
    baseline = out / "baseline.json"
    return {
        "steps": recorder.steps,
        "epochs": recorder.epochs,
        "best": summary["best"],
        "global_step": summary["global_step"],
        "baseline_mAP": json.loads(baseline.read_text())["mAP"] if baseline.is_file() else None,
        "weights_abs_sum": checksum,
    }


def main() -> int:
    import tempfile

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory(prefix="reidpipe-reference-") as tmp:
        data = make_data(Path(tmp))
        results = {name: run_case(name, data, Path(tmp) / name) for name in CASES}
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REFERENCE
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{k} {len(v['steps'])} steps" for k, v in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
