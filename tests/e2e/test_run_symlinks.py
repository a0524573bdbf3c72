"""Symbolic links where `reidpipe run` writes: never followed. A link at ``events.jsonl`` is replaced by
the run's own log in one rename (its target is untouched); a ``thumbs`` link is refused before any
work (exit 6, one line: older crops would be removed, and new ones written, in another folder). The
gallery's own files (a ``lock`` or ``gallery.db`` link): tests/e2e/test_fuzz_damaged_gallery.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_run_bad_input import one_line_error, render_walker, run_cli

from reidpipe.errors import OutputError


@pytest.fixture(scope="module")
def walker(tmp_path_factory):
    return render_walker(tmp_path_factory.mktemp("walker"), "lobby", n=12)


def run(capsys, walker, out: Path):
    video, det = walker
    return run_cli(capsys, "--sources", video, "--detections", det, "--reid", "hist", "--output", out)


def test_an_events_jsonl_link_is_replaced_never_written_through(tmp_path, capsys, walker):
    precious = tmp_path / "precious.txt"
    precious.write_text("someone else's file\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "events.jsonl").symlink_to(precious)
    code, err = run(capsys, walker, out)
    assert code == 0, err
    assert precious.read_text() == "someone else's file\n"
    assert not (out / "events.jsonl").is_symlink() and '"run_end"' in (out / "events.jsonl").read_text()


def test_a_thumbs_link_is_refused_before_any_work(tmp_path, capsys, walker):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"\xff\xd8 a photo")
    out = tmp_path / "out"
    out.mkdir()
    (out / "thumbs").symlink_to(photos)
    code, err = run(capsys, walker, out)
    assert code == OutputError.exit_code
    assert "thumbs is a symbolic link" in one_line_error(err)
    assert [p.name for p in photos.iterdir()] == ["holiday.jpg"] and not (out / "trajectories.json").exists()
