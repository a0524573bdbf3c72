"""The public face: pinned API, instant CLI help, no heavy import at `import reidpipe`."""

from __future__ import annotations

import subprocess
import sys

import reidpipe

PUBLIC = {
    "__version__",
    "Pipeline",
    "PipelineConfig",
    "write_trajectories",
    "read_trajectories",
    "list_variants",
    "create_model",
    "load_checkpoint",
    "save_checkpoint",
    "ReidpipeError",
}
COMMANDS = ["run", "demo", "score", "report", "train", "eval", "export", "bench"]


def test_public_api_is_pinned_and_resolves():
    assert set(reidpipe.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(reidpipe, name) is not None


def test_import_and_help_load_no_heavy_library():
    code = (
        "import sys, reidpipe, reidpipe.cli\n"
        "p = reidpipe.cli.build_parser()\n"
        "heavy = [m for m in ('torch', 'cv2', 'ultralytics', 'open_clip', 'onnxruntime', 'supervision')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"heavy modules imported by the CLI parser: {out.stdout.strip()}"


def test_every_command_has_help():
    for cmd in COMMANDS:
        out = subprocess.run([sys.executable, "-m", "reidpipe", cmd, "--help"], capture_output=True, text=True)
        assert out.returncode == 0, (cmd, out.stderr)
        assert f"usage: reidpipe {cmd}" in out.stdout


def test_no_command_prints_usage_and_exits_2():
    out = subprocess.run([sys.executable, "-m", "reidpipe"], capture_output=True, text=True)
    assert out.returncode == 2 and "usage: reidpipe" in out.stdout
