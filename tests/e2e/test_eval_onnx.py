"""`reidpipe eval` of the real OSNet ONNX model on a Market-1501-layout folder of synthetic crops."""

from __future__ import annotations

import json

import pytest
from shared_data import DATA  # noqa: E402  (tests/ is on sys.path)

from reidpipe.cli import main as cli
from reidpipe.reid.datasets.synthetic import write_dataset

OSNET = DATA / "models" / "osnet_x0_25_msmt17.onnx"


@pytest.mark.real_data
@pytest.mark.skipif(not OSNET.is_file(), reason=f"real OSNet ONNX not present at {OSNET}")
def test_eval_osnet_onnx_on_market_layout(tmp_path, capsys):
    write_dataset("market1501", tmp_path, ids=2, test_ids=5, per_cam=2, cams=3, size=(128, 64), distractors=2, junk=1)
    out = tmp_path / "m.json"
    for extra in ([], ["--rerank"]):
        rc = cli(
            [
                "eval",
                "--weights",
                str(OSNET),
                "--dataset",
                "market1501",
                "--data-root",
                str(tmp_path),
                "--output",
                str(out),
                "--no-progress",
                *extra,
            ]
        )
        assert rc == 0
        m = json.loads(out.read_text())
        assert m["num_query"] == 5 and m["num_gallery"] == 5 * 5 + 2  # junk dropped, distractors kept
        for k in ("mAP", "rank1", "rank5", "rank10"):
            assert 0.0 <= m[k] <= 1.0
        assert m["model"]["kind"] == "onnx" and m["model"]["embed_dim"] == 512
        assert m["rerank"] is bool(extra)
        # identities differ by clothing colour: a real ReID model ranks the true match high
        assert m["rank5"] >= 0.6


def test_eval_errors_name_the_input(tmp_path, capsys):
    write_dataset("market1501", tmp_path, ids=1, test_ids=2, size=(16, 8))
    assert (
        cli(["eval", "--weights", str(tmp_path / "nope.pt"), "--dataset", "market1501", "--data-root", str(tmp_path)])
        == 3
    )
    assert "nope.pt" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert cli(["eval", "--weights", str(bad), "--dataset", "market1501", "--data-root", str(tmp_path)]) == 8
    assert "bad.pt" in capsys.readouterr().err
