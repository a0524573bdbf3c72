"""The OpenVINO IR embedder: pre-processing from the model (Model API ``model_info`` rt_info, else the
Open Model Zoo convention raw BGR 0-255) or the flags, dynamic batch, clear errors; and the real Intel
``person-reidentification-retail-0277`` on real person crops of the twin_2cam cameras."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from reidpipe.errors import InputNotFoundError, UsageError
from reidpipe.pipeline.config import PipelineConfig
from reidpipe.pipeline.models.embed import OpenVinoEmbedder, embedder_kind, load_embedder

ov = pytest.importorskip("openvino", reason="the optional package openvino (reidpipe[openvino]) is not installed")

from shared_data import DATA  # noqa: E402  (tests/ is on sys.path)

OMZ = DATA / "models" / "person-reidentification-retail-0277.xml"
TWIN = DATA / "mtmc" / "twin_2cam"


def channel_mean_model(path: Path, model_info: dict[str, str] | None = None) -> Path:
    """An IR (N, 3, 8, 4) -> per-channel mean (N, 3): its output is the pre-processed pixel value."""
    import openvino.opset13 as ops

    data = ops.parameter([1, 3, 8, 4], np.float32, name="data")
    model = ov.Model([ops.reduce_mean(data, ops.constant(np.array([2, 3], np.int64)), keep_dims=False)], [data])
    for key, value in (model_info or {}).items():
        model.set_rt_info(value, ["model_info", key])
    ov.save_model(model, str(path))
    return path


def flat(b, g, r, shape=(20, 10)):
    img = np.zeros((*shape, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = b, g, r
    return img


def direction(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def test_an_ir_without_model_info_gets_raw_bgr_pixels(tmp_path):
    e = OpenVinoEmbedder(str(channel_mean_model(tmp_path / "m.xml")))
    assert (e.input_size, e.color, e.dim) == ((8, 4), "BGR", 3)
    (y,) = e.embed([flat(10, 20, 30)])
    assert y == pytest.approx(direction([10, 20, 30]), abs=1e-5)


def test_model_info_mean_scale_and_channel_order_are_applied(tmp_path):
    info = {
        "mean_values": "123.675 116.28 103.53",
        "scale_values": "58.395 57.12 57.375",
        "reverse_input_channels": "True",
    }  # an RGB model, values in its (R, G, B) order
    e = OpenVinoEmbedder(str(channel_mean_model(tmp_path / "m.xml", info)))
    assert e.color == "RGB"
    (y,) = e.embed([flat(10, 20, 30)])
    expected = [(30 - 123.675) / 58.395, (20 - 116.28) / 57.12, (10 - 103.53) / 57.375]
    assert y == pytest.approx(direction(expected), abs=1e-4)


def test_flags_override_the_model(tmp_path):
    e = OpenVinoEmbedder(
        str(channel_mean_model(tmp_path / "m.xml")),
        color="RGB",
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        input_size=(16, 8),
    )
    assert e.input_size == (16, 8)
    (y,) = e.embed([flat(10, 20, 30)])
    assert y == pytest.approx(direction([30, 20, 10]), abs=1e-5)


def test_crops_embed_in_batches_of_any_size(tmp_path):
    e = OpenVinoEmbedder(str(channel_mean_model(tmp_path / "m.xml")), batch=3)
    rng = np.random.default_rng(0)
    crops = [
        rng.integers(0, 255, size=(rng.integers(20, 60), rng.integers(10, 30), 3), dtype=np.uint8) for _ in range(7)
    ]
    together = e.embed(crops)
    assert together.shape == (7, 3)
    assert together == pytest.approx(np.concatenate([e.embed([c]) for c in crops]), abs=1e-5)
    assert e.embed([]).shape == (0, 3)


def test_xml_means_openvino_and_a_missing_bin_is_named(tmp_path):
    xml = channel_mean_model(tmp_path / "m.xml")
    cfg = PipelineConfig(reid_weights=str(xml))
    assert embedder_kind(cfg) == "openvino" and embedder_kind(PipelineConfig(reid="openvino")) == "openvino"
    assert isinstance(load_embedder(cfg), OpenVinoEmbedder)
    xml.with_suffix(".bin").unlink()
    with pytest.raises(InputNotFoundError, match=r"m\.bin"):
        load_embedder(cfg)


def test_the_precision_setting_reaches_the_compiled_ir(tmp_path):
    """``openvino_precision`` (default f32) is what OpenVINO compiles the IR in: bf16 only when asked,
    and only where the CPU has bf16 instructions."""
    xml = str(channel_mean_model(tmp_path / "m.xml"))
    bf16_cpu = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert load_embedder(PipelineConfig(reid_weights=xml)).precision == "f32"
    asked = load_embedder(PipelineConfig(reid_weights=xml, openvino_precision="bf16"))
    assert asked.precision == ("bf16" if bf16_cpu else "f32")


def test_without_openvino_installed_the_error_says_how_to_get_it(tmp_path, monkeypatch):
    xml = channel_mean_model(tmp_path / "m.xml")
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    with pytest.raises(UsageError, match=r"m\.xml.*pip install 'reidpipe\[openvino\]'"):
        load_embedder(PipelineConfig(reid_weights=str(xml)))


@pytest.fixture(scope="module")
def people():
    """Two real crops of each of six people of twin_2cam cam1 (their GT boxes >= 30 frames apart)."""
    if not (OMZ.exists() and TWIN.is_dir()):
        pytest.skip("../shared/data (the OMZ model and the twin_2cam clip) is absent")
    import cv2

    gt = np.loadtxt(TWIN / "cam1_gt.txt", delimiter=",")
    cap = cv2.VideoCapture(str(TWIN / "cam1.mp4"))
    frames = [cap.read()[1] for _ in range(300)]
    cap.release()
    x, y, w, h = gt[:, 2], gt[:, 3], gt[:, 4], gt[:, 5]
    inside = (h > 120) & (gt[:, 0] <= 300) & (x > 0) & (y > 0) & (x + w < 960) & (y + h < 540)
    rows = gt[inside]

    def crop(r):
        x0, y0, ww, hh = r[2:6].astype(int)
        return frames[int(r[0]) - 1][y0 : y0 + hh, x0 : x0 + ww]

    out = {}
    for pid in np.unique(rows[:, 1]):
        r = rows[rows[:, 1] == pid]
        if r[:, 0].max() - r[:, 0].min() >= 30:
            out[int(pid)] = (crop(r[np.argmin(r[:, 0])]), crop(r[np.argmax(r[:, 0])]))
    assert len(out) >= 5
    return out


@pytest.mark.real_data
def test_real_omz_model_embeds_unit_vectors_independent_of_the_batch(people):
    e = OpenVinoEmbedder(str(OMZ))
    assert (e.input_size, e.color, e.dim, e.precision) == ((256, 128), "BGR", 256, "f32")  # f32 on every CPU
    crops = [c for pair in people.values() for c in pair][:8]
    batch = e.embed(crops)
    assert batch.shape == (8, 256) and np.linalg.norm(batch, axis=1) == pytest.approx(np.ones(8), abs=1e-5)
    one_by_one = np.concatenate([e.embed([c]) for c in crops])
    assert batch == pytest.approx(one_by_one, abs=1e-4)


@pytest.mark.real_data
def test_real_omz_model_finds_each_person_again_among_the_others(people):
    e = OpenVinoEmbedder(str(OMZ))
    ids = list(people)
    first = e.embed([people[i][0] for i in ids])
    later = e.embed([people[i][1] for i in ids])
    sim = first @ later.T
    for k, pid in enumerate(ids):  # a person's later crop is closer than any other person's
        assert sim[k, k] > np.delete(sim[k], k).max(), (pid, np.round(sim[k], 2))
