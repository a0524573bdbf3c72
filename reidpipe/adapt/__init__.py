"""``reidpipe adapt``: fine-tune a run's own embedder on the people its runs followed, without labels.

A finished run is a labelled data set that nobody labelled: every track is one person, two tracks a
camera saw at the same time are two people, and a cross-camera link the linker was sure of is one
person seen by two cameras. This package turns runs into that data set and hands it to the training
engine:

- :mod:`.runs`: open a run folder (``trajectories.json``, the sources it names, the embedder it
  recorded), every value bounded;
- :mod:`.mine`: pseudo-identities from a run's identities and link evidence (which joins to trust);
- :mod:`.crops`: which boxes of a track to crop (evenly spaced, whole, unoccluded) and reading them
  from the sources;
- :mod:`.dataset`: the mined set in the Market-1501 layout, some pseudo-identities held out as
  query / gallery so that ``reidpipe train`` / ``eval`` score a model on it.

It lives apart from ``reid/datasets`` (readers of on-disk ReID data sets, which know nothing of the
pipeline) because it reads the pipeline's outputs and writes a data set: it joins the two halves.
"""
