"""The variant registry and create_model (reid/registry.py)."""

from __future__ import annotations

import pytest
import torch

import reidpipe
from reidpipe.errors import ConfigError
from reidpipe.reid import registry


def test_list_is_sorted_and_has_the_baseline():
    names = reidpipe.list_variants()
    assert names == sorted(names) and "clipreid" in names
    assert "CLIP-ReID" in registry.variant_description("clipreid")


def test_unknown_variant_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        reidpipe.create_model("clipreed", num_classes=3, pretrained=False)
    assert "'clipreed'" in str(info.value) and "clipreid" in str(info.value)


def test_unknown_override_is_named():
    with pytest.raises(ConfigError, match="'bakbone'"):
        reidpipe.create_model("clipreid", num_classes=3, pretrained=False, tiny=True, bakbone="RN50")


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"num_classes": 0}, "num_classes"),
        ({"num_classes": "many"}, "num_classes"),
        ({"num_classes": 3, "input_size": (8, 8)}, "input_size"),
        ({"num_classes": 3, "pretrained": 3.5}, "pretrained"),
        ({"num_classes": 3, "backbone": "RN101"}, "RN101"),
    ],
)
def test_bad_arguments(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        reidpipe.create_model("clipreid", tiny=True, **{"pretrained": False, **kwargs})


def test_build_kwargs_rebuild_the_same_architecture():
    model = reidpipe.create_model(
        "clipreid", num_classes=3, pretrained=False, tiny=True, backbone="ViT-B-16", input_size=(96, 48)
    )
    assert model.build_kwargs == {"tiny": True, "backbone": "ViT-B-16", "input_size": [96, 48]}
    again = reidpipe.create_model(model.variant, num_classes=3, pretrained=False, **model.build_kwargs)
    assert model.input_size == again.input_size == (96, 48)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in again.state_dict().items()}


def test_registering_a_name_twice_with_another_builder_is_refused():
    def builder_a(*, num_classes, pretrained=False):
        raise AssertionError("not called")

    def builder_b(*, num_classes, pretrained=False):
        raise AssertionError("not called")

    try:
        registry.register_variant("zz_test_variant", builder_a, "test")
        registry.register_variant("zz_test_variant", builder_a, "test")  # idempotent
        with pytest.raises(ConfigError, match="already registered"):
            registry.register_variant("zz_test_variant", builder_b, "test")
    finally:
        registry._VARIANTS.discard("zz_test_variant")
    with pytest.raises(ConfigError, match="identifier"):
        registry.register_variant("bad name", builder_a, "test")


def test_public_api_is_lazy_and_pinned():
    assert {"create_model", "list_variants", "load_checkpoint", "save_checkpoint"} <= set(reidpipe.__all__)
    assert reidpipe.create_model is registry.create_model
    assert isinstance(torch.zeros(1), torch.Tensor)


def test_pretrained_given_as_config_text():
    model = reidpipe.create_model("clipreid", num_classes=2, pretrained="false", tiny=True)
    assert model.num_classes == 2 and "pretrained" not in model.build_kwargs
