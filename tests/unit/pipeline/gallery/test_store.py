"""The gallery's lock (pipeline/gallery/store.py): one writer at a time, readers never wait."""

from __future__ import annotations

import pytest

from reidpipe.cli import main
from reidpipe.errors import GalleryLockedError
from reidpipe.pipeline.gallery.store import Store

from .runs import T0, split_runs

pytest.importorskip("faiss", reason="faiss-cpu (the [faiss] / [dev] extra) is not installed")


def test_a_second_writer_is_refused_with_one_line(tmp_path, capsys):
    g, *_ = split_runs(tmp_path, T0)
    with Store.open(g, write=True):
        with pytest.raises(GalleryLockedError, match="in use by another process"):
            Store.open(g, write=True)
        assert main(["gallery", "prune", "--gallery", str(g), "--older-than", "30d"]) == GalleryLockedError.exit_code
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "in use by another process" in err[0]
        assert main(["gallery", "info", "--gallery", str(g)]) == 0  # readers never wait for the writer
    Store.open(g, write=True).close()  # released
