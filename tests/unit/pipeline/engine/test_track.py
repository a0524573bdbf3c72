"""Per-camera tracking: ids, histories, closing when the tracker drops a track, confirmation back-fill,
the minimum duration, gap filling by interpolation, every tracker of the package."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from reidpipe.errors import ConfigError
from reidpipe.pipeline.engine.track import TRACKERS, CameraTracker, complete_hidden_box, interpolate_points
from reidpipe.pipeline.types import Tracklet, TrackPoint


def dets(boxes, conf=0.9):
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return sv.Detections(xyxy=b, confidence=np.full(len(b), conf, np.float32), class_id=np.zeros(len(b), int))


@pytest.mark.parametrize("name", TRACKERS.names())
def test_two_walkers_get_two_tracks_that_close_after_lost_frames(name):
    trk = CameraTracker("cam1", name, lost_frames=5, min_hits=1, min_seconds=0)
    closed = []
    for i in range(20):
        a = [10 + 3 * i, 20, 50 + 3 * i, 120]
        b = [300 - 3 * i, 30, 340 - 3 * i, 130]
        out = trk.update(dets([a, b]), frame_index=2 * i, t=0.2 * i, image=np.zeros((240, 400, 3), np.uint8))
        assert len(out) <= 2
        closed += trk.pop_closed()
    assert closed == [] and len(trk.open) == 2
    for i in range(20, 26):
        trk.update(dets([]), frame_index=2 * i, t=0.2 * i, image=np.zeros((240, 400, 3), np.uint8))
        closed += trk.pop_closed()
    assert len(closed) == 2 and not trk.open
    ids = sorted(t.track for t in closed)
    assert ids[0] >= 1 and ids[0] != ids[1]
    for t in closed:
        assert t.closed and t.camera == "cam1"
        assert len(t.points) >= 17  # every frame after confirmation
        frames = [p.frame for p in t.points]
        assert frames == sorted(frames) and all(f % 2 == 0 for f in frames)
        assert t.points[-1].t == pytest.approx(0.2 * (t.points[-1].frame // 2))
    left = min(closed, key=lambda t: t.points[0].bbox[0])
    assert left.points[-1].bbox[0] == pytest.approx(10 + 3 * 19, abs=1.0)


def test_a_lost_track_closes_when_the_tracker_drops_it_and_a_new_one_gets_a_new_number():
    trk = CameraTracker("c", "bytetrack", lost_frames=2, min_hits=1, min_seconds=0)
    for i in range(5):
        trk.update(dets([[10, 10, 50, 110]]), i, i / 10)
    for i in (5, 6):  # the tracker keeps a lost track for lost_frames frames
        trk.update(dets([]), i, i / 10)
        assert trk.pop_closed() == []
    trk.update(dets([]), 7, 0.7)
    first = trk.pop_closed()
    assert len(first) == 1 and first[0].track == 1 and not trk.open
    for i in range(8, 11):
        trk.update(dets([[10, 10, 50, 110]]), i, i / 10)
    rest = trk.close_all()
    assert [t.track for t in rest] == [2]


def test_a_track_the_tracker_finds_again_keeps_its_number_and_its_gap_is_filled():
    trk = CameraTracker("c", "bytetrack", lost_frames=3, min_hits=1, min_seconds=0)
    for i in range(5):
        trk.update(dets([[10 + 4 * i, 10, 50 + 4 * i, 110]]), i, i / 10)
    for i in (5, 6, 7):
        trk.update(dets([]), i, i / 10)
    out = trk.update(dets([[42, 10, 82, 110]]), 8, 0.8)
    assert out.tracker_id.tolist() == [1] and trk.pop_closed() == []
    (t,) = trk.close_all()
    assert [p.frame for p in t.points] == list(range(9))
    assert [p.interpolated for p in t.points] == [False] * 5 + [True] * 3 + [False]
    for p in t.points[5:8]:  # linear between frame 4 (x1 = 26) and frame 8 (x1 = 42)
        assert p.bbox == pytest.approx((26 + 4 * (p.frame - 4), 10, 66 + 4 * (p.frame - 4), 110))
        assert p.t == pytest.approx(p.frame / 10) and p.score == pytest.approx(0.9)
    assert t.detected == 6


def walk(trk, frames, gap=(), step=1, x0=10.0):
    """One person walking right 3 px per processed frame, undetected at the frames in ``gap``."""
    for k in range(frames):
        f = k * step
        box = [[x0 + 3 * k, 20, x0 + 40 + 3 * k, 120]] if f not in gap else []
        trk.update(dets(box), f, f / 10)
    return trk.close_all()


def test_gaps_are_filled_at_the_processed_frames_only_up_to_max_gap_seconds():
    # stride 2: processed frames 0, 2, 4, ...; a 0.6 s gap (frames 20-24) is filled, a 1.4 s one is not
    (t,) = walk(
        CameraTracker("c", lost_frames=30, max_gap=1.0), 40, gap={20, 22, 24, 50, 52, 54, 56, 58, 60, 62}, step=2
    )
    interp = [p.frame for p in t.points if p.interpolated]
    assert interp == [20, 22, 24]
    frames = [p.frame for p in t.points]
    assert frames == sorted(frames) and not set(range(50, 63, 2)) & set(frames)
    k = 11  # frame 22 is processed frame 11: x1 = 10 + 3 * 11 on the straight line
    assert t.points[frames.index(22)].bbox[0] == pytest.approx(10 + 3 * k)


def test_no_interpolate_outputs_only_detections():
    (t,) = walk(CameraTracker("c", interpolate=False), 30, gap={10, 11, 12})
    assert [p.frame for p in t.points] == [f for f in range(30) if f not in (10, 11, 12)]
    assert not any(p.interpolated for p in t.points)


def test_a_confirmed_track_starts_at_its_first_detection():
    """The tracker reports a track's first min_hits - 1 boxes unconfirmed (id -1); they are taken back."""
    (t,) = walk(CameraTracker("c", min_hits=3, min_seconds=0), 10)
    assert [p.frame for p in t.points] == list(range(10))
    assert t.points[0].bbox == pytest.approx((10, 20, 50, 120)) and not t.points[0].interpolated


def test_a_burst_shorter_than_min_seconds_is_never_output():
    trk = CameraTracker("c", min_seconds=1.0)
    seen = []
    for f in range(40):
        boxes = [[10 + 3 * f, 20, 50 + 3 * f, 120]]
        if 5 <= f < 11:  # a 0.6 s false-positive burst elsewhere
            boxes.append([400, 300, 430, 380])
        out = trk.update(dets(boxes), f, f / 10)
        seen += out.tracker_id.tolist()
        if f == 9:  # the person has lasted 0.9 s: not output yet
            assert len(out) == 0 and not trk.open
        if f == 10:  # 1.0 s: output, with its history from frame 0
            assert out.tracker_id.tolist() == [1] and [p.frame for p in trk.opened[0].points] == list(range(11))
    closed = trk.close_all()
    assert [t.track for t in closed] == [1] and set(seen) == {1} and trk.discarded == 1


def _burst_then_person(burst: range, person: range):
    """One place in view: detections there on the frames of ``burst`` and of ``person`` (10 fps)."""
    trk = CameraTracker("c", min_seconds=1.0, lost_frames=30)
    for f in range(person.stop):
        boxes = [[300, 100, 340, 200]] if f in burst or f in person else []
        trk.update(dets(boxes), f, f / 10)
    return trk.close_all()


def test_a_burst_kept_alive_across_a_gap_is_not_output_with_the_person_it_takes_over():
    """A 0.5 s false-positive burst, then 2 s with nothing, then a person where the burst's box is: the
    tracker's lost track takes the person's detections; its burst is not output with them."""
    (t,) = _burst_then_person(range(0, 5), range(25, 45))
    assert t.points[0].frame == 25 and len(t.points) == 20 and not any(p.interpolated for p in t.points)


def test_a_track_output_before_a_long_gap_keeps_its_points():
    (t,) = _burst_then_person(range(0, 15), range(35, 45))  # 1.5 s: output before the gap
    assert [p.frame for p in t.points] == list(range(15)) + list(range(35, 45))


def test_interpolated_points_are_marked_in_json():
    a = TrackPoint(frame=2, t=0.2, bbox=(0, 0, 10, 20), score=0.8)
    b = TrackPoint(frame=6, t=0.6, bbox=(8, 4, 18, 24), score=0.4)
    (mid,) = interpolate_points(a, b, [(4, 0.4)])
    assert mid.to_json() == {"frame": 4, "t": 0.4, "bbox": [4.0, 2.0, 14.0, 22.0], "score": 0.6, "interpolated": True}
    assert "interpolated" not in a.to_json()


def test_unknown_tracker_is_a_config_error():
    with pytest.raises(ConfigError, match="deepsort"):
        CameraTracker("c", "deepsort")


def test_an_interval_that_changes_keeps_the_track_and_predicts_the_motion():
    """A walker (3 px a frame) detected every 2nd frame, then every 4th (a live camera whose detector
    interval rose): one track, and the boxes of the undetected frames on the walker's line."""
    trk = CameraTracker("c", "bytetrack", lost_frames=30, min_hits=1, min_seconds=0, detect_every=2)
    predicted = {}
    for f in range(0, 61):
        if f == 21:
            trk.set_interval(4)
        every = 2 if f <= 20 else 4
        x = 10 + 3 * f
        if (f if f <= 20 else f - 20) % every == 0:
            trk.update(dets([[x, 20, x + 40, 120]]), f, f / 10)
        else:
            out = trk.predict(f, f / 10)
            if len(out):
                predicted[f] = float(out.xyxy[0][0])
    (t,) = trk.close_all()
    assert t.points[0].frame <= 2 and t.points[-1].frame == 60
    after = {f: x for f, x in predicted.items() if f > 24}  # the first 4-frame step is behind us
    assert len(after) >= 20
    for f, x in after.items():
        assert x == pytest.approx(10 + 3 * f, abs=2.0), f


# ---------------------------------------------------------------- step 4: the static background
POSTER = [330, 60, 360, 110]  # a person-like part of the background the detector fires on


def _scene(frame: int, person_x: float | None) -> np.ndarray:
    """A textured, slightly noisy background (the same every frame) and, where ``person_x`` is given,
    a person: a 30x80 px block of their own colours with its left edge there."""
    rng = np.random.default_rng(frame)
    image = np.random.default_rng(0).integers(40, 200, (240, 400, 3), dtype=np.uint8)
    image = np.clip(image.astype(int) + rng.integers(-2, 3, image.shape), 0, 255).astype(np.uint8)
    if person_x is not None:
        x = int(person_x)
        image[100:180, x : x + 30] = (20, 230, 90)
        image[100:120, x : x + 30] = (200, 170, 140)
    return image


def _poster_and_walker(min_foreground: float, walker: range, frames: int = 120, stop_at: float | None = None):
    """10 fps: the poster is detected on every frame (0.55: the low-confidence stage keeps its track,
    with peaks of 0.7 that start one); a person walks right across the view during ``walker`` (to
    ``stop_at`` and no further, when given)."""
    trk = CameraTracker("c", min_seconds=1.0, lost_frames=30, min_foreground=min_foreground)
    for f in range(frames):
        boxes, conf = [POSTER], [0.7 if f % 10 in (0, 1) else 0.55]
        x = None
        if f in walker:
            x = 10.0 + 4 * (f - walker.start)
            if stop_at is not None:
                x = min(x, stop_at)
            boxes.append([x, 100, x + 30, 180])
            conf.append(0.85)
        d = dets(boxes)
        d.confidence = np.asarray(conf, np.float32)
        trk.update(d, f, f / 10, image=_scene(f, x))
    return trk.close_all()


def test_a_static_false_positive_on_the_background_gets_no_track_and_a_walker_does():
    """The poster is tracked for the whole 12 s without the rule (the control); with it, only the
    person is output, from their first detection."""
    without = _poster_and_walker(0.0, range(20, 80))
    assert any(t.points[0].bbox == pytest.approx(POSTER) and len(t.points) > 90 for t in without)
    (person,) = _poster_and_walker(0.1, range(20, 80))
    assert person.points[0].frame == 20 and person.points[-1].frame == 79
    assert all(p.bbox[0] < POSTER[0] - 10 or p.bbox[1] == 100 for p in person.points)


def test_a_track_that_ends_on_the_background_box_ends_where_the_person_was_last():
    """A person walks onto the poster and is no longer detected there (gone behind it): their track
    takes the poster's boxes; those trailing background boxes are dropped at its close."""
    closed = _poster_and_walker(0.1, range(20, 100), frames=160, stop_at=POSTER[0])
    (person,) = closed
    assert person.points[0].frame == 20
    assert person.points[-1].frame <= 100 and person.points[-1].bbox[1] == 100  # the person's own box


def test_an_output_track_of_a_person_standing_still_is_kept():
    """A person who walks in and then stands still for 8 s stays one track to the end."""
    (person,) = [t for t in _poster_and_walker(0.1, range(10, 120), stop_at=120.0) if t.points[0].frame == 10]
    assert person.points[-1].frame == 119 and len(person.points) == 110


# ---------------------------------------------------------------- step 5: partly hidden people
def test_a_box_whose_lower_part_another_person_hides_is_grown_back_down():
    """A person 120 px tall; someone in front (feet lower) covers their legs and the detector gives
    only the upper 80 px: the box keeps its top and gets its height back."""
    box = np.array([100.0, 50.0, 140.0, 130.0])
    front = np.array([[120.0, 110.0, 165.0, 240.0], box])  # its own box among the frame's detections
    assert complete_hidden_box(box, height=120, others=front).tolist() == [100, 50, 140, 170]


def test_a_box_whose_upper_part_is_hidden_grows_up():
    box = np.array([100.0, 90.0, 140.0, 170.0])  # the feet seen, the head hidden by someone behind
    behind = np.array([[110.0, 20.0, 150.0, 120.0]])
    assert complete_hidden_box(box, height=120, others=behind).tolist() == [100, 50, 140, 170]


def test_a_person_who_sits_down_alone_or_strides_keeps_the_detected_box():
    """Shorter with nobody near: the shape changed, nothing hides it; a narrower box is a stride."""
    box = np.array([100.0, 110.0, 140.0, 170.0])
    far = np.array([[400.0, 50.0, 440.0, 170.0]])
    assert complete_hidden_box(box, height=120, others=far).tolist() == box.tolist()
    narrow = np.array([100.0, 50.0, 115.0, 170.0])
    beside = np.array([[114.0, 45.0, 160.0, 175.0]])
    assert complete_hidden_box(narrow, height=120, others=beside).tolist() == narrow.tolist()


def test_the_track_of_a_person_walking_behind_another_keeps_its_height():
    """Two people walk towards each other; while the one in front passes, the detector sees only the
    upper half of the one behind. Their track keeps the full height (its feet where they are) with
    the rule, the cut box without it."""

    def run(complete: bool) -> Tracklet:
        trk = CameraTracker("c", min_seconds=0.0, min_hits=1, complete_hidden=complete)
        for f in range(40):
            back = [50.0 + 4 * f, 50, 90.0 + 4 * f, 170]
            front = [250.0 - 4 * f, 90, 295.0 - 4 * f, 240]
            if 22 <= f < 30:  # the front person, passing, hides the back one's legs
                back[3] = 110
            trk.update(dets([back, front]), f, f / 10)
        return min(trk.close_all(), key=lambda t: t.points[0].bbox[0])

    assert [p.bbox[3] for p in run(True).points if 22 <= p.frame < 30] == [170] * 8
    assert [p.bbox[3] for p in run(False).points if 22 <= p.frame < 30] == [110] * 8


def test_a_person_in_view_from_the_first_frame_is_output_from_their_first_box():
    """The background model's first frame shows the person, who stands for 1 s and then walks: until
    they have walked off those pixels their box looks like background, but the model has not learnt
    the view yet (LEARN_SECONDS), so their track starts at frame 0 (without that, at frame 10)."""
    trk = CameraTracker("c", min_seconds=1.0, min_foreground=0.1)
    for f in range(60):
        x = 10.0 + 4 * max(0, f - 10)
        trk.update(dets([[x, 100, x + 30, 180]]), f, f / 10, image=_scene(f, x))
    (person,) = trk.close_all()
    assert person.points[0].frame == 0 and person.points[-1].frame == 59


def test_a_grown_box_does_not_vouch_for_the_next_one():
    """A track 150 px tall, then mostly 118-px boxes with a 126-px one every fourth frame (the person
    walked away from the camera), beside someone standing lower: the first 118-px boxes are grown
    (shorter than 0.8 of 150), but the track's own height follows its boxes that were not grown, so
    the later ones are kept as detected (were the grown boxes counted, they would stay 150 for good)."""
    trk = CameraTracker("c", min_seconds=0.0, min_hits=1, complete_hidden=True)
    for f in range(50):
        h = 150 if f < 10 else (126 if f % 4 == 0 else 118)
        person = [100.0 + f, 200.0 - h, 140.0 + f, 200.0]
        beside = [130.0 + f, 120, 175.0 + f, 260]  # feet lower: in front
        trk.update(dets([person, beside]), f, f / 10)
    track = min(trk.close_all(), key=lambda t: t.points[0].bbox[0])
    heights = [round(p.bbox[3] - p.bbox[1]) for p in track.points if p.frame >= 40]
    assert heights == [126 if f % 4 == 0 else 118 for f in range(40, 50)]
