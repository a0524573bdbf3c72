"""ReID datasets in their official on-disk layouts (see ``readers``), image loading with parsing maps
(``images``), and tiny synthetic datasets in those layouts (``synthetic``)."""

from reidpipe.reid.datasets.base import ImageRecord, ReIDDataset
from reidpipe.reid.datasets.readers import build_dataset, dataset_names

__all__ = ["ImageRecord", "ReIDDataset", "build_dataset", "dataset_names"]
