"""Public detections are checked against the frame they belong to, as MOTChallenge tools do: boxes are
clipped to the frame, rows outside it, degenerate, absurdly large or past the video's end are dropped,
all counted in one warning naming file:line; frame numbers must be whole; a BOM, tabs and a stray
non-UTF-8 byte in a comment read."""

from __future__ import annotations

import pytest
from scene_args import hist_run_args
from test_run_bad_input import one_line_error, render_walker

from reidpipe.cli import main
from reidpipe.pipeline.io.export import read_trajectories


@pytest.fixture(scope="module")
def walker(tmp_path_factory):
    return render_walker(tmp_path_factory.mktemp("w"), "lobby", n=60)  # 160x120, 60 frames


def run(capsys, video, det, out):
    code = main(hist_run_args([video], [det], out))
    return code, capsys.readouterr().err


def test_rows_that_do_not_fit_the_frame_are_dropped_or_clipped_with_one_warning(tmp_path, capsys, walker):
    video, det = walker
    good = det.read_text().splitlines()
    bad_rows = [
        "3,-1,100000,14,25,87,0.9",  # far right of the frame
        "4,-1,-90000,-90000,25,87,0.9",  # far up-left
        "5,-1,0,0,3000000,3000000,0.9",  # 3e6-px box
        "6,-1,50,50,0.001,0.001,0.9",  # 0.001-px box
        "70,-1,10,14,25,87,0.9",  # past the 60-frame video
        "71,-1,10,14,25,87,0.9",
        "7,-1,-5,14,25,87,0.9",  # partly outside: clipped
    ]
    first_bad = len(good) + 2  # after the BOM'd comment line and the good rows
    text = (
        "\ufeff# det.txt with a BOM, tabs and a \xff byte in this comment\n"
        + "\n".join(r.replace(",", "\t") for r in good)
        + "\n"
        + "\n".join(bad_rows)
        + "\n"
    )
    bad = tmp_path / "det.txt"
    bad.write_bytes(text.encode("utf-8").replace("\xff".encode(), b"\xff"))
    code, err = run(capsys, video, bad, tmp_path / "o")
    assert code == 0, err
    warnings = [s for s in err.splitlines() if s.startswith("reidpipe: warning:")]
    assert len(warnings) == 1, err
    w = warnings[0]
    assert "4 boxes outside the 160x120 frame" in w and f"det.txt:{first_bad}" in w
    assert "2 rows after the video's last frame 60" in w and f"det.txt:{first_bad + 4}" in w
    assert "1 boxes clipped" in w and f"det.txt:{first_bad + 6}" in w
    data = read_trajectories(tmp_path / "o" / "trajectories.json")
    boxes = [p["bbox"] for i in data["identities"] for t in i["tracks"] for p in t["points"]]
    assert boxes and all(0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120 for x1, y1, x2, y2 in boxes)
    assert max(p["frame"] for i in data["identities"] for t in i["tracks"] for p in t["points"]) < 60


@pytest.mark.parametrize("row", ["1.5,-1,10,14,25,87,0.9", "1e300,-1,10,14,25,87,0.9", "0,-1,10,14,25,87,0.9"])
def test_frame_numbers_must_be_whole_and_in_range(tmp_path, capsys, walker, row):
    video, det = walker
    bad = tmp_path / "det.txt"
    bad.write_text(det.read_text() + row + "\n")
    code, err = run(capsys, video, bad, tmp_path / "o")
    assert code == 5 and "det.txt:61" in one_line_error(err)


def test_a_non_utf8_byte_in_a_data_line_names_the_line(tmp_path, capsys, walker):
    video, det = walker
    bad = tmp_path / "det.txt"
    bad.write_bytes(det.read_bytes() + b"61,-1,1\xff,14,25,87,0.9\n")
    code, err = run(capsys, video, bad, tmp_path / "o")
    assert code == 5 and "det.txt:61" in one_line_error(err)
