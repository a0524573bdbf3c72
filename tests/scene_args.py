"""`reidpipe run` arguments for the two-camera sample scene (reidpipe.samples.scene.make_scene)."""

from __future__ import annotations


def scene_run_args(scene, out, *flags: str) -> list[str]:
    """`reidpipe run` on the scene's cameras (named as in the scene, public detections, the `hist`
    descriptor), outputs in ``out``, then ``flags``."""
    cams = scene["cameras"]
    return [
        "run",
        "--sources",
        *(str(scene["videos"][c]) for c in cams),
        "--names",
        *cams,
        "--detections",
        *(str(scene["det"][c]) for c in cams),
        "--reid",
        "hist",
        "--output",
        str(out),
        "--no-progress",
        *flags,
    ]
