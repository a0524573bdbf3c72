"""The detector's interval per camera (pipeline/engine/cadence.py): the smallest intervals the measured load
allows, one detection rate in time for cameras of different frame rates, rising at once when the loop
is overloaded and falling only with room to spare; recordings keep their fixed interval."""

from __future__ import annotations

from reidpipe.pipeline.engine.cadence import (
    HIGH,
    CameraCadence,
    IntervalChooser,
    Load,
    choose_intervals,
    predicted_busy,
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
        "detected_frames": 2,
        "tracked_only_frames": 4,
        "changes": [],
    }
