"""The Python API: Pipeline(...).run(sources) on two synthetic cameras with public detections."""

from __future__ import annotations

import json

from walker_video import render  # (tests/ is on sys.path)

from reidpipe.pipeline.io.export import read_trajectories
from reidpipe.pipeline.runner import STAGES, Pipeline


def test_pipeline_links_one_person_across_two_cameras_and_reports_stats(tmp_path):
    a, da = render(tmp_path, "hall", start=0, n=30)
    b, db = render(tmp_path, "exit", start=5, n=50)
    out = tmp_path / "out"
    pipe = Pipeline(
        detections=[da, db],
        reid="hist",
        output=str(out),
        progress=False,
        offsets=[0.0, 4.0],
        track_lost_frames=5,
        link={"min_similarity": 0.6, "non_overlapping": True},
    )
    identities = pipe.run([a, b])
    assert [s.camera for s in pipe.sources] == ["hall", "exit"]
    assert len(identities) == 1 and identities[0].id == 1
    assert identities[0].cameras == ["hall", "exit"]
    (ident,) = read_trajectories(out / "trajectories.json")["identities"]
    hall, exit_ = ident["tracks"]
    assert hall["camera"] == "hall" and exit_["camera"] == "exit"
    # offset + frame 5 at 10 fps: the person appears at frame 5 (a track confirmed on its 2nd hit starts
    # at its first detection)
    assert exit_["points"][0]["frame"] == 5 and exit_["points"][0]["t"] == 4.0 + 0.5
    assert exit_["link"]["score"] > 0.6 and exit_["link"]["gap"] > 0
    st = pipe.stats
    assert st["frames"] == {"hall": 30, "exit": 50}
    assert st["detections"] == 30 + 45
    assert 0 < st["crops_embedded"] <= st["detections"]
    assert all(st["seconds"][k] >= 0 for k in STAGES) and st["seconds"]["detect"] > 0
    assert st["fps"]["total"] > 0 and st["tracklets"] == 2 and st["identities"] == 1
    assert st["corrupt_frames"] == {"hall": 0, "exit": 0} and st["interrupted"] is False
    events = [json.loads(s) for s in (out / "events.jsonl").read_text().splitlines()]
    links = [e for e in events if e["event"] == "link"]
    assert len(links) == 2 and links[1]["identity"] == links[0]["identity"]
