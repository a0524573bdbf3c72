"""The camera's background model: a person who walked in is foreground, a still part of the view is not."""

from __future__ import annotations

import numpy as np

from reidpipe.pipeline.engine.foreground import ForegroundModel


def frame(k: int, person_x: int | None) -> np.ndarray:
    rng = np.random.default_rng(k)
    image = np.random.default_rng(0).integers(40, 200, (270, 480, 3), dtype=np.uint8)  # the view
    image = np.clip(image.astype(int) + rng.integers(-2, 3, image.shape), 0, 255).astype(np.uint8)
    if person_x is not None:
        image[100:220, person_x : person_x + 40] = (20, 230, 90)
    return image


def test_a_walker_is_foreground_and_a_still_patch_of_the_view_is_not():
    model = ForegroundModel()
    boxes = np.array([[0.0, 0.0, 40.0, 120.0], [300.0, 20.0, 340.0, 90.0]])
    assert model.share(boxes).tolist() == [1.0, 1.0]  # nothing known before the first frame
    for k in range(40):
        x = 10 + 6 * k
        model.update(frame(k, x), k / 10)
        boxes[0] = [x, 100, x + 40, 220]
    walker, patch = model.share(boxes)
    assert walker > 0.8 and patch < 0.02


def test_a_person_who_stops_stays_foreground_for_seconds():
    """Learning is in seconds: 5 s standing still (50 frames at 10 fps) is not enough to be background."""
    model = ForegroundModel()
    for k in range(100):
        x = 10 + 6 * min(k, 50)
        model.update(frame(k, x), k / 10)
    assert model.share(np.array([[x, 100, x + 40, 220]]))[0] > 0.8


def test_a_fast_camera_is_learnt_at_most_every_update_interval_and_still_sees_the_walker():
    """30 fps for 4 s: after the first frames (the model settling) it learns about every 0.15 s, not
    every frame, and the last mask still finds the walker (and not the still patch) between updates."""
    from reidpipe.pipeline.engine import foreground

    model = ForegroundModel()
    boxes = np.array([[0.0, 0.0, 40.0, 120.0], [300.0, 20.0, 340.0, 90.0]])
    for k in range(120):
        x = 10 + 2 * k
        model.update(frame(k, x), k / 30)
        boxes[0] = [x, 100, x + 40, 220]
    settling = foreground.WARMUP / 30
    assert model._updates <= foreground.WARMUP + (4.0 - settling) / foreground.UPDATE_SECONDS + 1
    assert model._updates < 40  # far fewer than the 120 frames
    walker, patch = model.share(boxes)
    # the mask is up to 4 frames old: the walker has moved 8 of its 40 px since, far above the 0.1 rule
    assert walker >= 0.75 and patch < 0.02
