"""The engine trains as it did when ``reference_runs.json`` was recorded: the same loss terms at every
step, the same learning rates, evaluations and final weights, for the fine-tuning path (``--init``,
frozen stem, channels-last), a two-stage variant, a three-stage one with parsing maps and one with
its own loss-set optimiser and gradient clipping (``reference_runs.py`` says how to re-record)."""

from __future__ import annotations

import json
import math

import pytest
import reference_runs as ref  # this folder is on sys.path: pytest prepends a test module's folder (no __init__.py)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    data = ref.make_data(root)
    return {name: ref.run_case(name, data, root / name) for name in ref.CASES}


def _close(a: float | None, b: float | None, rel: float = 1e-3, abs_: float = 1e-4) -> bool:
    """Equal up to the float noise of another CPU's kernels (bit-identical on the recording machine);
    a changed step (another loss, freezing, RNG order, learning rate) moves losses by far more."""
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


@pytest.mark.parametrize("case", list(ref.CASES))
def test_steps_losses_and_metrics_match_the_reference(case, runs):
    want = json.loads(ref.REFERENCE.read_text())[case]
    got = runs[case]
    assert len(got["steps"]) == len(want["steps"]) and got["global_step"] == want["global_step"]
    for i, (g, w) in enumerate(zip(got["steps"], want["steps"])):
        assert g.keys() == w.keys() and (g["stage"], g["epoch"]) == (w["stage"], w["epoch"]), i
        bad = {k: (g[k], w[k]) for k in w if k not in ("stage", "epoch") and not _close(g[k], w[k])}
        assert not bad, f"step {i}: {bad}"
    assert [(e["stage"], e["epoch"]) for e in got["epochs"]] == [(e["stage"], e["epoch"]) for e in want["epochs"]]
    for g, w in zip(got["epochs"], want["epochs"]):
        assert g.keys() == w.keys() and all(_close(g[k], w[k]) for k in w if k not in ("stage", "epoch")), (g, w)
    assert got["best"].keys() == want["best"].keys()
    assert _close(got["best"]["mAP"], want["best"]["mAP"]) and got["best"]["epoch"] == want["best"]["epoch"]
    assert _close(got["baseline_mAP"], want["baseline_mAP"])
    assert _close(got["weights_abs_sum"], want["weights_abs_sum"], rel=1e-4)


def test_a_stop_signal_while_last_pt_is_written_is_acted_on_once_it_is_recorded(tmp_path, monkeypatch):
    """SIGTERM that arrives while ``last.pt`` is being written stops the run right after the write,
    with the checkpoint recorded as saved (so the message names its epoch, not "no epoch was saved")."""
    import signal
    from types import SimpleNamespace

    import reidpipe.trainers.engine as engine
    from reidpipe.signals import Terminated, signals_as_interrupts

    def write_and_get_stopped(path, *args, **kwargs):
        # SIGTERM in the middle of the save: what the kernel does on delivery, run the installed
        # handler (not os.kill: a process-wide signal inside the test session reaches every thread)
        signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)
        path.write_bytes(b"checkpoint")
        return path

    monkeypatch.setattr(engine, "save_training_checkpoint", write_and_get_stopped)
    trainer = SimpleNamespace(
        run_dir=tmp_path, model=None, stage=None, stage_index=0, stage_name="main", epoch=1, stage_cfg={"epochs": 6},
        global_step=10, best=None, cfg={}, world=1, _loss_states=None, last_eval=None, last_saved=None,
    )  # fmt: skip
    with signals_as_interrupts(), pytest.raises(Terminated):
        engine.Trainer.save(trainer, "last.pt")
    assert (tmp_path / "last.pt").read_bytes() == b"checkpoint"
    assert trainer.last_saved == ("main", 1)
