"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest
from rtsp_camera import RTSPCamera  # tests/ is on sys.path: pytest puts a rootdir conftest's folder there


@pytest.fixture
def rtsp_camera():
    """Start an :class:`RTSPCamera` with ``rtsp_camera(frames_for, fps=...)``; stopped after the test."""
    cameras = []

    def start(frames_for, fps: float = 25.0) -> RTSPCamera:
        camera = RTSPCamera(frames_for, fps).__enter__()
        cameras.append(camera)
        return camera

    yield start
    for camera in cameras:
        camera.__exit__(None, None, None)


@pytest.fixture(scope="session")
def local_ray():
    """ONE local Ray instance (2 CPUs) for the whole test session (it takes ~6-12 s to start): every
    ``--engine ray`` run in this process joins it instead of starting its own."""
    import logging

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """The cache folder (dynamic-batch copies of batch-1 ONNX models, pipeline/models/onnx_batch.py) is the
    session's own, never the user's ~/.cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
    yield
    mp.undo()


@pytest.fixture(autouse=True, scope="session")
def _reference_detector_runtime():
    """``backend: auto`` runs YOLOX on ONNX Runtime fp32 in the tests (the figures they check were
    measured there; measuring every runtime would cost each session a quantization): the tests of the
    choice itself (test_runtime_choice.py) name their candidates."""
    from reidpipe.pipeline.models import runtime_choice

    mp = pytest.MonkeyPatch()
    mp.setattr(runtime_choice, "CANDIDATES", (runtime_choice.REFERENCE,))
    yield
    mp.undo()
