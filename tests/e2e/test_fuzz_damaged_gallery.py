"""Fuzz: a damaged gallery (``--gallery DIR``) through every command that opens one, in-process through
the CLI's ``main``. Each gives exit 0 or exactly one stderr line, ``reidpipe: error: ...``, with an exit
code of the README's table (5: damaged); ``gallery check`` finds every damage (it rebuilds nothing);
a run never loses its outputs to the gallery (when it wrote ``events.jsonl`` it wrote
``trajectories.json``); an index that is garbage is rebuilt from the database by the next writer; a
symbolic link among the gallery's files is refused and its target is never written."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from scene_args import hist_run_args
from test_fuzz_one_line import documented_exit_codes
from test_run_bad_input import render_walker

from reidpipe.cli import main

pytest.importorskip("faiss", reason="faiss-cpu (the [faiss] / [dev] extra) is not installed")

DAY1, DAY2 = "2029-12-31T09:00:00Z", "2030-01-01T09:00:00Z"  # a day apart: the run matches by appearance


@pytest.fixture(scope="module")
def walker(tmp_path_factory):
    return render_walker(tmp_path_factory.mktemp("walker"), "lobby", n=12)


def run_args(walker, out: Path, gallery: Path, start: str) -> list[str]:
    video, det = walker
    return hist_run_args([video], [det], out, "--gallery", str(gallery), "--start-time", start)


@pytest.fixture(scope="module")
def base(tmp_path_factory, walker):
    """A sound gallery of one run (one identity, one tracklet, both indexes saved)."""
    folder = tmp_path_factory.mktemp("base")
    assert main(run_args(walker, folder / "out", folder / "g", DAY1)) == 0
    return folder / "g"


def sql(statement: str) -> Callable[[Path], None]:
    def damage(g: Path) -> None:
        with sqlite3.connect(g / "gallery.db") as db:
            db.execute(statement)

    return damage


def replace_db(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def damage(g: Path) -> None:
        for p in g.glob("gallery.db*"):
            p.unlink()
        make(g / "gallery.db")

    return damage


def truncate_db(g: Path) -> None:
    db = g / "gallery.db"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.truncate(db, db.stat().st_size // 2)


def nan_camera_mean(g: Path) -> None:
    with sqlite3.connect(g / "gallery.db") as db:
        (mean,) = db.execute("SELECT mean FROM cameras").fetchone()
        db.execute("UPDATE cameras SET mean=?", (mean[:-4] + b"\x00\x00\xc0\x7f",))  # a float32 NaN


def other_faiss_index(g: Path) -> None:
    import faiss

    faiss.write_index(faiss.IndexFlatIP(3), str(g / "identities.faiss"))


def symlink(name: str, target: str) -> Callable[[Path], None]:
    def damage(g: Path) -> None:
        (g / name).unlink(missing_ok=True)
        (g / name).symlink_to(g.parent.parent / target)  # beside the test's copies: tmp_path / target

    return damage


def folder_instead(name: str) -> Callable[[Path], None]:
    def damage(g: Path) -> None:
        (g / name).unlink(missing_ok=True)
        (g / name).mkdir()

    return damage


# name -> (damage, what `gallery check` must name, rebuilt by the next writer)
DAMAGES: dict[str, tuple[Callable[[Path], None], str, bool]] = {
    "db random bytes": (replace_db(lambda p: p.write_bytes(os.urandom(65536))), "gallery.db cannot be read", False),
    "db truncated": (truncate_db, "gallery.db", False),
    "db a folder": (replace_db(lambda p: p.mkdir()), "gallery.db is a folder", False),
    "db a symlink": (symlink("gallery.db", "elsewhere.db"), "gallery.db is a symbolic link", False),
    "identities.faiss garbage": (
        lambda g: (g / "identities.faiss").write_bytes(os.urandom(4000)),
        "identities.faiss: not a FAISS index",
        True,
    ),
    "identities.faiss another index": (other_faiss_index, "identities.faiss: not an inner-product index", True),
    "identities.faiss empty": (lambda g: (g / "identities.faiss").write_bytes(b""), "identities.faiss", True),
    "tracklets.faiss a folder": (folder_instead("tracklets.faiss"), "tracklets.faiss is a folder", False),
    "2-byte feature": (
        sql("UPDATE tracklets SET feature=x'0102'"),
        "tracklets row 1 feature holds 2 bytes",
        False,
    ),
    "2-byte embedding": (sql("UPDATE identities SET embedding=x'0102'"), "embedding holds 2 bytes", False),
    "NaN camera mean": (nan_camera_mean, "cameras row 'lobby' mean holds a value that is not finite", False),
    "next_identity abc": (sql("UPDATE meta SET value='abc' WHERE key='next_identity'"), "next_identity 'abc'", False),
    "version huge": (sql("UPDATE meta SET value='1e999' WHERE key='version'"), "meta version", False),
    "model garbage": (sql("UPDATE meta SET value='{garbage' WHERE key='model'"), "meta model is not JSON", False),
    "model dim 1e9": (
        sql("UPDATE meta SET value=json_set(value, '$.dim', 1000000000) WHERE key='model'"),
        "meta model dim",
        False,
    ),
    "lock a symlink": (symlink("lock", "precious.txt"), "lock is a symbolic link", False),
    "lock a folder": (folder_instead("lock"), "lock is a folder", False),
}


def one_error_line(capsys, case) -> str:
    err = capsys.readouterr().err
    lines = [s for s in err.splitlines() if s.strip()]
    assert len(lines) == 1 and lines[0].startswith("reidpipe: error: "), (case, err)
    return lines[0]


@pytest.mark.parametrize("name", list(DAMAGES))
def test_a_damaged_gallery_is_one_line_from_every_command_and_check_names_it(tmp_path, capsys, walker, base, name):
    damage, named, rebuildable = DAMAGES[name]
    codes = documented_exit_codes()
    precious = tmp_path / "precious.txt"
    precious.write_text("not the gallery's")

    def damaged_copy(tag: str) -> Path:
        g = tmp_path / tag / "g"
        shutil.copytree(base, g, symlinks=True)
        damage(g)
        return g

    g = damaged_copy("check")
    assert main(["gallery", "check", "--gallery", str(g)]) == 5, name  # it really checks
    line = one_error_line(capsys, name)
    assert "is damaged" in line and named in line, (name, line)

    for tag, args in {
        "info": ["gallery", "info"],
        "search": ["search", "--identity", "1"],
        "prune": ["gallery", "prune", "--older-than", "100000d"],
    }.items():
        g = damaged_copy(tag)
        code = main([*args, "--gallery", str(g)])
        assert code in {0, *codes}, (name, tag, code)
        if code:
            assert code == 5 and "is damaged" in one_error_line(capsys, (name, tag)), (name, tag)
        capsys.readouterr()

    g = damaged_copy("run")
    out = tmp_path / "run" / "out"
    code = main(run_args(walker, out, g, DAY2))
    if rebuildable:  # the index is derived: rebuilt from the database, the run goes on
        assert code == 0, (name, capsys.readouterr().err)
        capsys.readouterr()
        assert main(["gallery", "check", "--gallery", str(g)]) == 0, capsys.readouterr().err
    else:
        assert code == 5, (name, code)
        assert "is damaged" in one_error_line(capsys, name)
    if (out / "events.jsonl").exists():  # the run got as far as processing: its outputs are kept
        assert (out / "trajectories.json").stat().st_size > 0, name
    assert precious.read_text() == "not the gallery's"  # a link's target is never written
    assert not (tmp_path / "elsewhere.db").exists()  # a dangling gallery.db link creates nothing elsewhere


def test_a_gallery_that_fails_after_the_run_keeps_every_output(tmp_path, capsys, walker, base, monkeypatch):
    """The gallery's index cannot be saved (a full disk: FAISS fails to write) after the run's commit:
    exit 6, one line naming the index and saying where the outputs are; trajectories.json holds the
    run under the gallery's ids, the database holds the run, and the index is rebuilt from it."""
    import faiss

    from reidpipe.pipeline.io.export import read_trajectories

    g = tmp_path / "g"
    shutil.copytree(base, g)
    out = tmp_path / "out"

    def disk_full(index, path):
        raise RuntimeError("Error in faiss::FileIOWriter: write failed (No space left on device)")

    monkeypatch.setattr(faiss, "write_index", disk_full)
    assert main(run_args(walker, out, g, DAY2)) == 6
    line = one_error_line(capsys, "index save")
    assert "identities.faiss" in line and f"outputs written to {out}" in line and "the gallery holds the run" in line
    (ident,) = read_trajectories(out / "trajectories.json")["identities"]
    monkeypatch.undo()
    with sqlite3.connect(g / "gallery.db") as db:
        assert db.execute("SELECT status FROM runs ORDER BY id").fetchall() == [("done",), ("done",)]
        assert ident["id"] in {i for (i,) in db.execute("SELECT identity FROM tracklets")}
    assert main(["gallery", "prune", "--gallery", str(g), "--older-than", "100000d"]) == 0  # a writer rebuilds
    capsys.readouterr()
    assert main(["gallery", "check", "--gallery", str(g)]) == 0


def test_a_gallery_that_cannot_give_ids_leaves_the_outputs_with_the_runs_own(tmp_path, capsys, walker, base):
    """The gallery's tracklets near the run were given to the linker, then the gallery fails to give
    global ids (a damaged identity embedding): trajectories.json holds the run's own tracks only
    (none of the gallery's, which the linker saw), under the run's ids 1..N."""
    from reidpipe.pipeline.io.export import read_trajectories

    g = tmp_path / "g"
    shutil.copytree(base, g)
    sql("UPDATE identities SET embedding=x'0102'")(g)
    out = tmp_path / "out"
    assert main(run_args(walker, out, g, "2029-12-31T09:01:00Z")) == 5  # a minute later: in the window
    errors = [s for s in capsys.readouterr().err.splitlines() if s.startswith("reidpipe: error:")]
    assert len(errors) == 1 and "with the run's own ids" in errors[0], errors
    data = read_trajectories(out / "trajectories.json")
    tracks = [tr for ident in data["identities"] for tr in ident["tracks"]]
    assert tracks and all(tr["track"] >= 0 for tr in tracks)  # the gallery's tracklets are -row id
    assert [i["id"] for i in data["identities"]] == list(range(1, len(data["identities"]) + 1))
