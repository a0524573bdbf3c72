"""`reidpipe bench --gallery-only` (pipeline/bench/gallery.py): query time per gallery size."""

from __future__ import annotations

import json

import pytest

from reidpipe.cli import main
from reidpipe.errors import UsageError

pytest.importorskip("faiss", reason="faiss-cpu (the [faiss] / [dev] extra) is not installed")


def test_bench_gallery_only_reports_query_time(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--gallery-only", "--gallery-sizes", "500,2000", "--gallery-dim", "32", "-o", str(out)]) == 0
    rows = json.loads(out.read_text())["gallery"]
    assert [r["embeddings"] for r in rows] == [500, 2000] and all(r["query_ms_median"] > 0 for r in rows)
    assert "gallery query time" in capsys.readouterr().out
    assert main(["bench", "--gallery-only", "--linker-only"]) == UsageError.exit_code
