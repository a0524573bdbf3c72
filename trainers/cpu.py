"""CPU threading for training, and a measure of training speed (crops/s).

torch's OpenMP threads spin-wait between parallel regions by default. On a small shared machine (two
cores, other processes running) the spinning threads take the cores the working ones need, and an
OSNet forward+backward runs several times slower than on one thread. Training therefore runs with:

- ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep). libgomp reads it once, when torch is
  loaded, so :func:`prefer_passive_openmp` is called by ``reidpipe train`` before torch is imported;
  a value the user set is kept;
- ``torch.set_num_threads(n)`` with ``n`` = the ``threads`` config key, or the CPUs this process may
  use (``os.sched_getaffinity``), at most 8; one inter-op thread.

``python -m reidpipe.trainers.cpu`` measures forward+backward+step crops/s of a model at a few
settings (each in its own process, since the wait policy is fixed at start-up); docs/training.md
gives the figures of the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

from reidpipe.cpus import usable_cpus

MAX_THREADS = 8


def prefer_passive_openmp() -> None:
    """Sleep, not spin, in idle OpenMP threads (unless the user chose a policy); call before torch loads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def configure_threads(threads: int | None) -> dict[str, Any]:
    """Set torch's intra-op threads (``threads`` or the usable CPUs, at most 8) and one inter-op
    thread; returns the settings, for the run's log and environment.json."""
    import torch

    n = int(threads) if threads else min(usable_cpus(), MAX_THREADS)
    n = max(1, min(n, 256))
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process (a second Trainer in the same process)
        pass
    return {"threads": n, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(library default)")}


def measure(
    variant: str,
    batch: int,
    steps: int,
    channels_last: bool,
    threads: int,
    options: dict[str, Any],
    frozen: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Crops/s of forward + ID loss + backward + Adam step on random crops of the model's input size,
    in this process; parameters under the ``frozen`` name prefixes do not train (their BatchNorm in
    eval mode), as a stage's ``frozen`` list does."""
    import torch
    import torch.nn.functional as F

    from reidpipe.reid.registry import create_model

    settings = configure_threads(threads)
    torch.manual_seed(0)
    model = create_model(variant, num_classes=100, pretrained=False, **options).train()
    for name, p in model.named_parameters():
        p.requires_grad_(not name.startswith(frozen))
    for name, m in model.named_modules():
        if name and (name + ".").startswith(frozen):
            m.eval()
    h, w = model.input_size
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x = torch.randn(batch, 3, h, w).to(memory_format=memory)
    y = torch.randint(0, 100, (batch,))
    times = []
    for i in range(steps + 2):  # two warm-up steps
        t0 = time.perf_counter()
        out = model(x, labels=y)
        assert out.logits is not None
        loss = F.cross_entropy(out.logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    times.sort()
    median = times[len(times) // 2]
    return {
        **settings,
        "batch": batch,
        "channels_last": channels_last,
        "frozen": list(frozen),
        "crops_per_s": round(batch / median, 1),
        "step_s_median": round(median, 4),
        "steps": steps,
    }


def _grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each setting in a fresh interpreter (the OpenMP wait policy is read at start-up)."""
    rows = []
    for _ in range(args.repeat):
        rows += _grid_once(args)
    return rows


def _grid_once(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for policy in args.policies:
        for threads in args.threads:
            for batch in args.batches:
                for cl in (False, True) if args.channels_last_too else (False,):
                    env = {**os.environ, "OMP_WAIT_POLICY": policy}
                    cmd = [sys.executable, "-m", "reidpipe.trainers.cpu", "--one", "--variant", args.variant]
                    cmd += ["--threads", str(threads), "--batches", str(batch), "--steps", str(args.steps)]
                    cmd += ["--options", args.options, "--frozen", *args.frozen] + (["--channels-last"] if cl else [])
                    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    row["omp_wait_policy"] = policy
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="training crops/s of a model on this CPU at several thread settings")
    p.add_argument("--variant", default="finetune")
    p.add_argument("--options", default='{"backbone": "osnet_x0_25"}', help="JSON builder options")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--policies", nargs="+", default=["PASSIVE", "ACTIVE"])
    p.add_argument("--batches", type=int, nargs="+", default=[64])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--frozen", nargs="*", default=["trunk.conv1.", "trunk.conv2."], help="name prefixes not trained")
    p.add_argument("--repeat", type=int, default=1, help="measure the whole grid this many times (interleaved)")
    p.add_argument("--channels-last", action="store_true", help="(--one) channels-last tensors")
    p.add_argument("--channels-last-too", action="store_true", help="also measure channels-last")
    p.add_argument("--one", action="store_true", help="measure one setting in this process")
    args = p.parse_args(argv)
    if args.one:
        row = measure(
            args.variant,
            args.batches[0],
            args.steps,
            args.channels_last,
            args.threads[0],
            json.loads(args.options),
            tuple(args.frozen),
        )
        print(json.dumps(row))
        return 0
    _grid(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
