"""A persistent gallery: identities that last across runs (``reidpipe run --gallery DIR``), person
search (``reidpipe search``), retention (``reidpipe gallery prune / forget / info``). docs/gallery.md.

    store.py      the SQLite database (identities, tracklets, cameras, runs, the model) and the lock
    index.py      the FAISS indexes of identity and tracklet embeddings, rebuilt when behind the database
    times.py      absolute start times of sources, durations
    crossrun.py   how a run's identities continue the gallery's (the linker within the window, appearance beyond)
    session.py    one run's use of the gallery (what the runner calls)
    search.py     the identities most similar to an image or to an identity
    retention.py  prune / forget
"""
