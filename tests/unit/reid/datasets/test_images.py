"""Images + parsing maps through the papers' transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reidpipe.errors import DatasetError, MalformedInputError
from reidpipe.reid.datasets.images import ImageDataset, check_parsing_maps
from reidpipe.reid.datasets.readers import build_dataset
from reidpipe.reid.datasets.synthetic import write_dataset
from reidpipe.reid.transforms import AugmentConfig, ReIDTransform

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def test_parsing_maps_follow_resize_flip_and_crop(tmp_path):
    d = write_dataset(
        "market1501", tmp_path / "reid", ids=2, test_ids=1, size=(32, 16), parsing_root=tmp_path / "parsing"
    )
    ds = build_dataset("market1501", d)
    check_parsing_maps(tmp_path / "parsing", ds.train)
    aug = AugmentConfig(flip=1.0, pad=10, erasing=0.0)
    item = ImageDataset(ds.train, ReIDTransform((64, 32), MEAN, STD, aug), tmp_path / "parsing")[(0, 123)]
    img, par = item["images"], item["parsing"]
    assert img.shape == (3, 64, 32) and par.shape == (64, 32) and par.dtype == torch.int64
    assert set(par.unique().tolist()) <= {0, 2, 5, 9, 13}  # nearest-neighbour: no blended labels
    # the same (index, seed) gives the same sample; another seed another crop
    again = ImageDataset(ds.train, ReIDTransform((64, 32), MEAN, STD, aug), tmp_path / "parsing")[(0, 123)]
    assert torch.equal(again["images"], img) and torch.equal(again["parsing"], par)
    other = ImageDataset(ds.train, ReIDTransform((64, 32), MEAN, STD, aug), tmp_path / "parsing")[(0, 7)]
    assert not torch.equal(other["parsing"], par) or not torch.equal(other["images"], img)


def test_geometry_of_flip_and_pad_crop():
    img = torch.zeros(3, 8, 4, dtype=torch.uint8)
    img[:, :, 0] = 255  # left column white
    par = torch.zeros(8, 4, dtype=torch.long)
    par[:, 0] = 5
    t = ReIDTransform((8, 4), (0, 0, 0), (1, 1, 1), AugmentConfig(flip=1.0))
    out, p = t(img, par, seed=1)
    assert out[0, :, -1].eq(1).all() and out[0, :, 0].eq(0).all()  # flipped: white column on the right
    assert p[:, -1].eq(5).all()
    t = ReIDTransform((8, 4), (0, 0, 0), (1, 1, 1), AugmentConfig(pad=2))
    for seed in range(5):
        out, p = t(img, par, seed=seed)
        assert out.shape == (3, 8, 4)
        # the padding is zeros (label 0); wherever the white column is, label 5 is at the same place
        assert torch.equal(out[0] == 1, p == 5)


def test_test_transform_is_plain_resize_and_normalise():
    img = torch.full((3, 20, 10), 128, dtype=torch.uint8)
    out, par = ReIDTransform((16, 8), MEAN, STD)(img, None, None)
    assert par is None and out.shape == (3, 16, 8)
    assert torch.allclose(out, torch.full_like(out, (128 / 255 - 0.5) / 0.25), atol=1e-5)


def test_random_erasing_changes_a_rectangle_only():
    img = torch.full((3, 64, 32), 100, dtype=torch.uint8)
    t = ReIDTransform((64, 32), (0, 0, 0), (1, 1, 1), AugmentConfig(erasing=1.0))
    out, _ = t(img, None, seed=3)
    changed = (out != 100 / 255).any(0)
    ys, xs = changed.nonzero(as_tuple=True)
    assert changed.sum() > 0
    box = changed[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    assert box.all()  # one filled rectangle
    area = box.numel() / (64 * 32)
    assert 0.02 <= area <= 0.34


def test_missing_and_bad_parsing_maps(tmp_path):
    d = write_dataset(
        "market1501", tmp_path / "reid", ids=2, test_ids=1, size=(16, 8), parsing_root=tmp_path / "parsing"
    )
    ds = build_dataset("market1501", d)
    victim = ds.train[0]
    p = (tmp_path / "parsing" / victim.rel).with_suffix(".png")
    p.unlink()
    with pytest.raises(DatasetError, match=p.name):
        check_parsing_maps(tmp_path / "parsing", ds.train)
    Image.fromarray(np.full((16, 8), 40, np.uint8)).save(p)
    with pytest.raises(MalformedInputError, match="label 40"):
        ImageDataset(ds.train, ReIDTransform((16, 8), MEAN, STD), tmp_path / "parsing")[0]
