"""``reidpipe bench --engine ray``'s online linking rate (the engines part is run by the Ray e2e tests' code paths)."""

from __future__ import annotations

from reidpipe.pipeline.bench.engine import bench_online_linking, format_online_linking


def test_online_linking_rate_is_reported_per_slice():
    res = bench_online_linking(n=200, dim=32, cameras=3, slices=4)
    assert res["tracklets"] == 200 and len(res["rate_per_slice"]) == 4
    assert res["sustained_per_s"] == min(res["rate_per_slice"]) > 0
    assert 0 < res["identities"] <= 200
    assert "sustained" in format_online_linking(res)
