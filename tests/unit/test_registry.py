"""Registries: one rule for every named choice (reidpipe/registry.py), and a new entry is all it takes
to add a detector, an embedder or a tracker to the pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.errors import ConfigError, UsageError
from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.engine.track import TRACKERS, CameraTracker
from reidpipe.pipeline.models.detect import DETECTORS, load_detector
from reidpipe.pipeline.models.embed import EMBEDDERS, embedder_kind, embeds_async, load_embedder
from reidpipe.pipeline.validate import check_config
from reidpipe.registry import Registry


def build_a():
    return "a"


def build_b():
    return "b"


def test_a_name_is_registered_once_and_an_unknown_name_lists_the_known_ones():
    kinds = Registry("--kind")
    kinds.add("a", build_a)
    kinds.add("a", build_a)  # the same builder again (a module imported twice): nothing changes
    with pytest.raises(ConfigError, match="--kind 'a' is already registered by build_a"):
        kinds.add("a", build_b)
    kinds.register("b", "the second", fast=True)(build_b)
    assert kinds.names() == ["a", "b"] and kinds.get("b")() == "b"
    assert kinds.entry("b").description == "the second" and kinds.entry("b").traits == {"fast": True}
    with pytest.raises(ConfigError, match="^--kind must be one of a, b, got 'c'$"):
        kinds.get("c")


def test_a_registry_loads_its_entries_on_first_use():
    loaded = []
    kinds: Registry[str] = Registry("--kind", loader=lambda: loaded.append(kinds.add("x", "X")))
    assert not loaded
    assert "x" in kinds and kinds.names() == ["x"] and len(loaded) == 1
    kinds.names()
    assert len(loaded) == 1


class _StillDetector:
    """A detector that sees one person in the middle of every frame."""

    def __init__(self, config):
        self.conf = config.det_conf

    def detect(self, frame_bgr, index=None):
        import supervision as sv

        h, w = frame_bgr.shape[:2]
        box = np.array([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]], np.float32)
        return sv.Detections(xyxy=box, confidence=np.ones(1, np.float32), class_id=np.zeros(1, int))

    def detect_batch(self, frames_bgr, indices=None):
        return [self.detect(f) for f in frames_bgr]

    def enable_batching(self) -> bool:
        return False


@pytest.fixture
def still_detector():
    DETECTORS.add("still", _StillDetector, "test detector")
    yield
    DETECTORS.discard("still")


def test_a_registered_detector_is_a_valid_setting_and_is_what_a_run_loads(still_detector):
    config = check_config(PipelineConfig(detector="none", detector_kind="still", det_conf=0.4), as_flags=True)
    detector = load_detector(config)
    assert isinstance(detector, _StillDetector) and detector.conf == 0.4
    found = detector.detect(np.zeros((40, 80, 3), np.uint8))
    assert found.xyxy.tolist() == [[20, 10, 60, 30]]


def test_an_unregistered_detector_kind_is_one_line_naming_the_flag_and_the_kinds():
    with pytest.raises(UsageError, match="^--detector-kind still: must be one of None, ultralytics, yolox"):
        check_config(PipelineConfig(detector_kind="still"), as_flags=True)


def test_every_registered_tracker_builds_and_only_bot_sort_reads_the_frame():
    assert TRACKERS.names() == ["bytetrack", "botsort", "ocsort", "sort"]
    uses_frame = {name: CameraTracker("cam", name).uses_frame for name in TRACKERS.names()}
    assert uses_frame == {"bytetrack": False, "botsort": True, "ocsort": False, "sort": False}


def test_the_embedder_registry_decides_kind_thread_and_weights():
    assert embedder_kind(PipelineConfig(reid_weights="m.xml")) == "openvino"
    assert embedder_kind(PipelineConfig(reid_weights="m.ckpt")) == "checkpoint"
    assert [e.name for e in EMBEDDERS.entries() if e.traits.get("releases_gil")] == ["onnx", "openvino"]
    assert embeds_async(PipelineConfig(reid_weights="m.onnx")) and not embeds_async(PipelineConfig(reid="hist"))
    assert load_embedder(PipelineConfig(reid="hist")).dim > 0  # the only kind without weights
    with pytest.raises(UsageError, match="--reid checkpoint needs --reid-weights"):
        load_embedder(PipelineConfig(reid="checkpoint"))
