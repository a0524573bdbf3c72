"""Online identity merges (pipeline/link/online.py): a merge is never undone, so it waits for the
run's typical tracklet duration; a later solution that parts the two identities drops it, and the
end of the stream makes every merge the last solution still supports."""

from __future__ import annotations

import numpy as np

from reidpipe.pipeline.config import LinkerConfig
from reidpipe.pipeline.link.constraints import Constraints
from reidpipe.pipeline.link.online import OnlineLinker
from reidpipe.pipeline.types import Tracklet, TrackPoint


def _tracklet(camera: str, track: int, start: float, seconds: float = 4.0) -> Tracklet:
    pts = [TrackPoint(frame=int(t * 10), t=float(t), bbox=(0, 0, 10, 30), score=0.9) for t in (start, start + seconds)]
    return Tracklet(camera=camera, track=track, points=pts, closed=True)


def _online() -> OnlineLinker:
    """Two identities given out (0: a cam1 tracklet, 1: a cam2 one), tracklets of 4 s."""
    on = OnlineLinker(LinkerConfig(refine=False), Constraints(LinkerConfig(), ["cam1", "cam2"]))
    for idx, (cam, start) in enumerate((("cam1", 0.0), ("cam2", 10.0))):
        t = _tracklet(cam, idx + 1, start)
        on._linkable.append((idx, t))
        on.add_unlinkable(idx, t, 0 if cam == "cam1" else 1)
    return on


def _solution(on: OnlineLinker, now: float, together: bool) -> None:
    """One solution at stream time ``now`` that puts the two identities together or apart."""
    on._now = now
    recent = on._linkable
    on._merge(np.array([0, 0] if together else [0, 1]), recent, wait=4.0)


def test_a_merge_waits_and_a_later_solution_that_parts_them_drops_it():
    on = _online()
    _solution(on, 14.0, together=True)  # proposed: waits 4 s
    assert on.pop_merges() == [] and on._pending
    _solution(on, 16.0, together=False)  # a track that was open has closed: not one person after all
    _solution(on, 19.0, together=True)  # proposed again: its wait starts again
    assert on.pop_merges() == []
    _solution(on, 23.0, together=True)  # still together 4 s later: merged, the later into the earlier
    assert on.pop_merges() == [(1, 0)] and on.root(1) == 0


def test_the_end_of_the_stream_makes_the_merges_still_waiting():
    on = _online()
    _solution(on, 14.0, together=True)
    on._last = (np.array([0, 0]), on._linkable)
    on.flush()
    assert on.pop_merges() == [(1, 0)]
    parted = _online()
    _solution(parted, 14.0, together=True)
    parted._last = (np.array([0, 1]), parted._linkable)  # the last solution parts them
    parted.flush()
    assert parted.pop_merges() == []


def test_the_wait_is_the_runs_typical_tracklet_duration():
    from reidpipe.pipeline.link.online import _settling_time

    recent = [(k, _tracklet("cam1", k + 1, 10.0 * k, seconds)) for k, seconds in enumerate((2.0, 6.0, 30.0))]
    assert _settling_time(recent) == 6.0  # the median: one very long track does not make every merge wait
    assert _settling_time([]) == 0.0
