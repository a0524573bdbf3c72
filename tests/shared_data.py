"""Where the real test files live: ``../shared/data`` beside the project (tests that use them skip
with a reason when it is absent)."""

from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OSNET = DATA / "models" / "osnet_x0_25_msmt17.onnx"


def public_detection_run(twin: str, cams: list[str], out, *flags: str, reid=OSNET) -> list[str]:
    """`reidpipe run` arguments: the cameras ``cams`` of the twin ``twin`` (../shared/data/mtmc) with
    their public detections and the real OSNet, outputs in ``out``, then ``flags``."""
    folder = DATA / "mtmc" / twin
    return [
        "run",
        "--sources",
        *[str(folder / f"{c}.mp4") for c in cams],
        "--detections",
        *[str(folder / f"{c}_det.txt") for c in cams],
        "--reid-weights",
        str(reid),
        "--output",
        str(out),
        "--no-progress",
        *flags,
    ]
