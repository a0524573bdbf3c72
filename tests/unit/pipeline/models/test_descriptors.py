"""The weight-free colour/texture descriptor (pipeline/models/descriptors.py)."""

from __future__ import annotations

import numpy as np
import pytest

from reidpipe.pipeline.models.descriptors import HistEmbedder


def person(shirt_bgr, trousers_bgr, h=120, w=50, stripes=False, bg=(90, 90, 90), light=1.0, seed=0):
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.float32)
    img[:] = bg
    x0, x1 = w // 5, w - w // 5
    img[h // 8 : h // 2, x0:x1] = shirt_bgr
    if stripes:
        img[h // 8 : h // 2 : 6, x0:x1] = (255, 255, 255)
    img[h // 2 :, x0 + 2 : x1 - 2] = trousers_bgr
    img[: h // 8, w // 3 : 2 * w // 3] = (140, 170, 220)  # head
    img = img * light + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_shape_dtype_norm_and_attributes():
    e = HistEmbedder()
    crops = [person((0, 0, 200), (60, 40, 20), h=h, w=w) for h, w in [(120, 50), (61, 23), (300, 110)]]
    f = e.embed(crops)
    assert f.shape == (3, e.dim) and f.dtype == np.float32
    assert np.allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    assert e.input_size == (128, 64)
    assert e.embed([]).shape == (0, e.dim)


def test_same_clothes_closer_than_other_clothes_across_lighting_scale_and_background():
    e = HistEmbedder()
    red_a = person((30, 30, 200), (50, 50, 50), bg=(90, 90, 90), seed=1)
    red_b = person((30, 30, 200), (50, 50, 50), h=80, w=34, bg=(60, 110, 60), light=0.75, seed=2)
    blue = person((200, 60, 20), (50, 50, 50), bg=(90, 90, 90), seed=3)
    red_striped = person((30, 30, 200), (50, 50, 50), stripes=True, seed=4)
    red_again = person((30, 30, 200), (50, 50, 50), seed=5)
    f = e.embed([red_a, red_b, blue, red_striped, red_again])
    s = f @ f.T
    assert s[0, 1] > s[0, 2] + 0.05  # same clothes in another camera beat other colour in the same one
    assert s[0, 4] > s[0, 3] + 0.03  # texture separates a plain from a striped shirt of one colour
    assert s[0, 3] > s[0, 2]


def test_deterministic_and_bad_crop_named():
    e = HistEmbedder(input_size=(64, 32), stripes=4)
    c = person((0, 200, 0), (90, 20, 20))
    assert np.array_equal(e.embed([c]), e.embed([c]))
    assert e.embed([c]).shape == (1, e.dim)
    with pytest.raises(ValueError, match="crop 1"):
        e.embed([c, np.zeros((0, 5, 3), np.uint8)])
