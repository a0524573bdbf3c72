"""The detector's interval per camera (pipeline/engine/cadence.py): the smallest intervals the measured load
allows, one detection rate in time for cameras of different frame rates, rising at once when the loop
is overloaded and falling only with room to spare; recordings keep one interval for the run: every
frame while the machine's detector can take them all, every 2nd frame when it cannot."""

from __future__ import annotations

from reidpipe.pipeline.engine.cadence import (
    DETECT_SHARE,
    HIGH,
    RECORDING_EVERY,
    CameraCadence,
    IntervalChooser,
    Load,
    choose_intervals,
    predicted_busy,
    recording_interval,
)


def load(busy: float, offered: dict[str, float], *, detect_share: float = 0.9, dropped: int = 0) -> Load:
    """One 2-second window in which every offered frame was processed, 1 in 2 detected."""
    processed = int(sum(offered.values()) * 2)
    return Load(
        seconds=2.0,
        busy=2.0 * busy,
        detect=2.0 * busy * detect_share,
        detected=processed // 2,
        processed=processed,
        offered=offered,
        dropped=dropped,
    )


def test_the_smallest_intervals_that_fit_the_machine():
    # 50 ms a detected frame, 1 ms the rest: two 10-fps cameras need every 2nd frame, one needs none
    assert choose_intervals({"a": 10.0}, d=0.05, p=0.001, most=4) == {"a": 1}
    two = choose_intervals({"a": 10.0, "b": 10.0}, d=0.05, p=0.001, most=4)
    assert two == {"a": 2, "b": 2} and predicted_busy({"a": 10.0, "b": 10.0}, two, 0.05, 0.001) <= 0.8
    # sixteen do not fit even at the largest interval: that one, and the frames dropped are counted
    many = {f"c{i}": 10.0 for i in range(16)}
    assert set(choose_intervals(many, d=0.03, p=0.001, most=4).values()) == {4}


def test_cameras_of_different_frame_rates_are_detected_at_one_rate_in_time():
    every = choose_intervals({"fast": 25.0, "slow": 10.0}, d=0.03, p=0.0005, most=8)
    assert every["fast"] > every["slow"] >= 1
    assert abs(25.0 / every["fast"] - 10.0 / every["slow"]) <= 10.0 / every["slow"]  # about one rate


def test_intervals_rise_when_overloaded_and_fall_only_with_room_to_spare():
    cams = [CameraCadence("a", adaptive=True), CameraCadence("b", adaptive=True), CameraCadence("file")]
    chooser = IntervalChooser(cams, most=4)
    offered = {"a": 10.0, "b": 10.0, "file": 10.0}
    # overloaded: frames dropped, the loop always busy -> larger intervals for the live cameras only
    changed = chooser.decide(load(1.0, offered, dropped=12), now=2.0)
    assert set(changed) == {"a", "b"} and all(new > old for old, new in changed.values())
    assert cams[2].every == 1 and cams[0].changes == [(2.0, cams[0].every)]
    high = cams[0].every
    # still dropping frames, though this window's detector was cheap: the intervals never fall then
    assert chooser.decide(load(0.95, offered, detect_share=0.2, dropped=3), now=3.0) == {}
    # busy but below HIGH and no frame dropped: nothing changes (no swinging back and forth)
    assert chooser.decide(load(HIGH - 0.05, offered), now=4.0) == {}
    # nearly idle: the intervals fall back
    changed = chooser.decide(load(0.1, offered, detect_share=0.5), now=6.0)
    assert changed and all(new < old for old, new in changed.values()) and cams[0].every < high


def test_a_camera_that_offers_no_frames_keeps_its_interval():
    cams = [CameraCadence("a", adaptive=True, every=3), CameraCadence("b", adaptive=True, every=3)]
    chooser = IntervalChooser(cams, most=4)
    changed = chooser.decide(load(1.0, {"a": 0.0, "b": 10.0}, dropped=3), now=2.0)
    assert "a" not in changed and cams[0].every == 3


def test_a_fixed_interval_counts_the_frames_only_tracked_and_dropped_frames_count_as_passed():
    c = CameraCadence("a", every=3)
    due = []
    for index in range(0, 12, 2):  # stride 2: processed frames 0, 2, 4, ...
        d = c.due(index, stride=2)
        c.record(index, d)
        due.append(d)
    assert due == [True, False, False, True, False, False]
    assert (c.detected, c.tracked_only) == (2, 4)
    assert c.due(20, stride=2)  # a live reader dropped frames 12-18: the next frame is due at once
    assert c.to_json() == {
        "every": 3,
        "adaptive": False,
        "reason": "",
        "detected_frames": 2,
        "tracked_only_frames": 4,
        "changes": [],
    }


def test_recordings_are_detected_every_frame_until_the_machine_cannot_take_them_all():
    # 16 ms of CPU a frame on 2 cores: ~87 frames/s for the detector and the rest of the pipeline
    few = recording_interval(demand_fps=20.0, detect_cpu_seconds=0.016, cores=2)
    many = recording_interval(demand_fps=160.0, detect_cpu_seconds=0.016, cores=2)
    assert few.every == 1 and many.every == RECORDING_EVERY == 2
    assert few.capacity_fps == many.capacity_fps == 2 * DETECT_SHARE / 0.016
    assert "within" in few.reason and "160 frames/s" in many.reason and "more than" in many.reason
    assert recording_interval(160.0, 0.016, cores=4).every == 1  # twice the cores take them
    for unknown in (None, 0.0, float("nan"), float("inf")):  # nothing measured: every frame, and said so
        chosen = recording_interval(160.0, unknown, cores=2)
        assert chosen.every == 1 and chosen.capacity_fps is None and "not measured" in chosen.reason


def test_the_detectors_cost_is_its_cpu_time_per_frame():
    import time

    import numpy as np

    from reidpipe.pipeline.models.runtime_choice import detector_cpu_seconds

    class Busy:  # burns 5 ms of CPU a frame, then sleeps 20 ms (a sleep costs no CPU)
        calls = 0

        def detect(self, frame, index=None):
            Busy.calls += 1
            t0 = time.process_time()
            while time.process_time() - t0 < 0.005:
                pass
            time.sleep(0.02)

    frames = [np.zeros((8, 8, 3), np.uint8)] * 3
    cost = detector_cpu_seconds(Busy(), frames)
    assert cost is not None and 0.004 < cost < 0.015  # the CPU, not the 25 ms of wall time
    assert Busy.calls == 1 + 2 * 3  # a warm-up frame, then the best of two rounds
    assert detector_cpu_seconds(Busy(), []) is None
