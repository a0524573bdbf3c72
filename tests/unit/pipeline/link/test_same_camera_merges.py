"""Two clusters of one camera in one identity (pipeline/link/offline.py, ``MergeEvidence``): two views
of one room, where camera 2 saw a person throughout and camera 1's tracker lost and found them again.
An embedder whose different people spread wide puts camera 1's re-entry level above the two
fragments' cosine, so step 2 leaves them apart; camera 2's track, seen at once with each, joins them.
Two fragments seen at once in one camera stay two people."""

from __future__ import annotations

import numpy as np

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link import Linker
from reidpipe.pipeline.link import offline as O
from reidpipe.pipeline.link.calibration import NegativeModel, PositiveModel
from reidpipe.pipeline.link.constraints import Constraints
from reidpipe.pipeline.link.groups import Groups
from reidpipe.pipeline.link.split import add_crop, candidate_segments
from reidpipe.pipeline.types import Tracklet, TrackPoint

DIM = 16  # different people spread wide: cosine sd ~0.25, as a fine-tuned embedder's
FPS = 10.0
PERSON = 10  # the person whom camera 1's tracker breaks
FIRST, SECOND, WHOLE = 100, 101, 200  # their track numbers: camera 1's two fragments, camera 2's track


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _track(cam: str, number: int, t0: float, t1: float, look: np.ndarray, x: float, rng) -> Tracklet:
    """A closed tracklet from ``t0`` to ``t1``: a box at ``x`` every frame, a crop of ``look`` (plus
    noise) every 5 frames."""
    t = Tracklet(camera=cam, track=number, closed=True)
    f0, f1 = int(round(t0 * FPS)), int(round(t1 * FPS))
    for f in range(f0, f1 + 1):
        t.points.append(TrackPoint(frame=f, t=f / FPS, bbox=(x, 100.0, x + 40.0, 220.0), score=0.9))
    for f in range(f0, f1 + 1, 5):
        add_crop(t, f, _unit(look + 0.12 * rng.standard_normal(DIM)), 0.8)
    t.feature = t.pooled_feature()
    t.segments = candidate_segments(t.segments)
    return t


def _room(seed: int, fragments_overlap: bool) -> list[Tracklet]:
    """24 people one after another (a new one every 5 s, 8-14 s in view), each seen by both cameras at
    once (camera 2's look a little different). Camera 1 sees person ``PERSON`` as two tracks, 1 s
    apart, or overlapping by 2 s (``fragments_overlap``: two people, as rule 1 reads it)."""
    rng = np.random.default_rng(seed)
    tracks, number = [], 1
    for p in range(24):
        look = _unit(rng.standard_normal(DIM))
        other_view = _unit(look + 0.25 * rng.standard_normal(DIM))
        t0 = 5.0 * p
        t1, x = t0 + rng.uniform(8, 14), rng.uniform(50, 800)
        if p == PERSON:
            mid = (t0 + t1) / 2
            end1, start2 = (mid + 1.0, mid - 1.0) if fragments_overlap else (mid - 0.5, mid + 0.5)
            tracks += [_track("cam1", FIRST, t0, end1, look, x, rng), _track("cam1", SECOND, start2, t1, look, x, rng)]
            tracks.append(_track("cam2", WHOLE, t0 + 0.3, t1 - 0.3, other_view, x * 0.8 + 30, rng))
        else:
            tracks.append(_track("cam1", number, t0, t1, look, x, rng))
            tracks.append(_track("cam2", number, t0 + 0.3, t1 - 0.3, other_view, x * 0.8 + 30, rng))
            number += 1
    return tracks


def _identities(tracks: list[Tracklet], cameras: list[str]) -> dict[tuple[str, int], int]:
    linker = Linker(LinkerConfig(), cameras)
    return {(t.camera, t.track): ident.id for ident in linker.link(tracks) for t in ident.tracklets}


def test_the_other_view_joins_one_persons_fragments_that_re_entry_left_apart():
    for seed in (1, 10):  # seeds where camera 1's re-entry level lies above the two fragments' cosine
        tracks = _room(seed, fragments_overlap=False)
        alone = _identities([t for t in tracks if t.camera == "cam1"], ["cam1"])
        assert alone[("cam1", FIRST)] != alone[("cam1", SECOND)], seed  # step 2 alone leaves them apart
        ids = _identities(tracks, ["cam1", "cam2"])
        assert ids[("cam1", FIRST)] == ids[("cam1", SECOND)] == ids[("cam2", WHOLE)], seed


def test_two_fragments_seen_at_once_in_one_camera_stay_two_identities():
    for seed in (2, 8, 11):  # seeds where camera 2's track is linked to one of the two
        ids = _identities(_room(seed, fragments_overlap=True), ["cam1", "cam2"])
        assert ids[("cam1", FIRST)] != ids[("cam1", SECOND)], seed
        assert ids[("cam2", WHOLE)] in (ids[("cam1", FIRST)], ids[("cam1", SECOND)]), seed


def _joins_second_fragment(cos_in_camera: float, second: tuple[float, float], with_reentry: bool = True) -> bool:
    """Identity {cam0 fragment a (0-10 s), cam1 track b (0-30 s)}; a strong candidate (score 10) links
    b with cam0 fragment c (``second``: its start and end), whose cosine to a is ``cos_in_camera``.
    Whether the merge is made, with cam0's step-2 models: one-person sample 0.9 ± 0.05, its level
    0.8, negatives 0 ± 0.2."""
    G = np.array([[cos_in_camera, np.sqrt(1 - cos_in_camera**2), 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    start, end = np.array([0.0, 0.0, second[0]]), np.array([10.0, 30.0, second[1]])
    code = np.array([0, 1, 0])
    cl = O.Clusters(G=G, code=code, family=np.arange(3), start=start, end=end, of=np.arange(3), sightings={})
    neg = NegativeModel(median=0.0, scale=0.2, n=300)
    models = [O.CameraPairModel("cam0~cam1", (0, 1), neg, np.zeros(0), 2.0, (2, 1))]
    reentry = O.ReentryEvidence({0: O.CameraReentry(one=(0.9, 0.05), level=0.8, negatives=neg, prior=-3.0)}, None)
    evidence = O.MergeEvidence(
        cl, models, [PositiveModel(mu=4.0, sigma=1.0, n=20)], [None], reentry=reentry if with_reentry else None
    )
    rules = Constraints(LinkerConfig(), ["cam0", "cam1"])
    groups = Groups(cl.start, cl.end, cl.code, cl.family)
    assert groups.merge(0, 1, rules, one_per_camera=True)
    evidence.joined(groups.find(0), 0, 1)
    cand = O.Candidates(
        i=np.array([2]),
        j=np.array([1]),
        sim=np.array([0.9]),
        z=np.array([4.5]),
        gap=np.array([-5.0]),
        pair=np.array([0]),
    )
    O._merge_in_order(groups, cand, np.array([10.0]), rules, evidence)
    return groups.find(0) == groups.find(2)


def test_a_second_cluster_of_one_camera_joins_only_at_its_one_person_level_and_never_at_once():
    assert _joins_second_fragment(0.95, (12.0, 20.0))  # looks like one person, seen after a
    assert not _joins_second_fragment(0.65, (12.0, 20.0))  # a look-alike: under the one-person level
    assert not _joins_second_fragment(0.95, (8.0, 20.0))  # seen at once with a: two people
    assert not _joins_second_fragment(0.95, (12.0, 20.0), with_reentry=False)  # no step-2 models
