"""What a training stage is built from: which parameters train, which sub-modules keep their
BatchNorm statistics, where the loss set's parameters are optimised, the batches the loader gives and
the one-line errors of a stage that does not fit the model or the dataset."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from reidpipe.errors import ConfigError, DatasetError
from reidpipe.reid.datasets.synthetic import write_dataset
from reidpipe.reid.registry import create_model
from reidpipe.trainers.build import (
    build_losses,
    build_optimizers,
    build_sampler,
    build_train_dataset,
    build_train_loader,
    check_stages,
    freeze_bn_of_frozen,
    select_trainable,
)
from reidpipe.trainers.config import load_config

CPU = torch.device("cpu")


def _cfg(variant: str, *overrides: str) -> dict:
    return load_config(variant, "market1501", ["model.pretrained=false", "model.options.tiny=true", *overrides])


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return write_dataset("market1501", root, ids=4, test_ids=2, per_cam=2, cams=2, size=(64, 32))


def test_a_stage_trains_only_its_parameters_minus_the_frozen_prefixes():
    torch.manual_seed(0)
    clip = create_model("clipreid", num_classes=4, pretrained=False, tiny=True)
    prompt, image = _cfg("clipreid")["stages"]
    names = [n for n, _ in select_trainable(clip, prompt)]
    assert names and all(n.startswith("prompt_learner.") for n in names)
    assert not any(p.requires_grad for n, p in clip.named_parameters() if n.startswith("backbone."))
    image = {**image, "frozen": ["backbone."]}
    names = [n for n, _ in select_trainable(clip, image)]
    assert names and not any(n.startswith(("backbone.", "prompt_learner.")) for n in names)
    assert {n for n, p in clip.named_parameters() if p.requires_grad} == set(names)

    mfa = create_model("mfa", num_classes=4, pretrained=False, tiny=True)
    main = {**_cfg("mfa")["stages"][0], "trainable": ["cpaa."]}
    assert {n.split(".")[0] for n, _ in select_trainable(mfa, main)} == {"cpaa"}


def test_fully_frozen_sub_modules_keep_their_batchnorm_statistics():
    torch.manual_seed(0)
    model = create_model("mfa", num_classes=4, pretrained=False, tiny=True)
    select_trainable(model, {**_cfg("mfa")["stages"][0], "frozen": ["trunk."]})
    model.train()
    freeze_bn_of_frozen(model)
    assert not any(m.training for m in model.trunk.modules() if list(m.parameters(recurse=False)))
    assert model.branches.training
    before = {k: v.clone() for k, v in model.trunk.state_dict().items()}
    model(torch.randn(4, 3, *model.input_size), labels=torch.tensor([0, 0, 1, 1]))
    assert all(torch.equal(before[k], v) for k, v in model.trunk.state_dict().items())


@pytest.mark.parametrize("loss_lr", [None, 0.5])
def test_center_loss_parameters_are_optimised_with_the_model_or_in_their_own_sgd(loss_lr):
    torch.manual_seed(0)
    model = create_model("mfa", num_classes=4, pretrained=False, tiny=True)
    st = _cfg("mfa", f"stages.*.optimizer.loss_lr={'null' if loss_lr is None else loss_lr}")["stages"][0]
    trainable = select_trainable(model, st)
    loss_set = build_losses(model, st, CPU)
    centers = [p for _, p in loss_set.trainable_parameters()]
    assert centers
    optimizer, loss_optimizer = build_optimizers(trainable, loss_set, st["optimizer"])
    in_main = {id(p) for g in optimizer.param_groups for p in g["params"]}
    if loss_lr is None:
        assert loss_optimizer is None and all(id(p) in in_main for p in centers)
        assert any(g["name"].startswith("loss.") for g in optimizer.param_groups)
    else:
        assert isinstance(loss_optimizer, torch.optim.SGD) and loss_optimizer.param_groups[0]["lr"] == 0.5
        assert not any(id(p) in in_main for p in centers)


def test_a_stage_carries_the_loss_parameters_an_earlier_stage_of_its_name_left():
    model = create_model("mfa", num_classes=4, pretrained=False, tiny=True)
    st = _cfg("mfa")["stages"][0]
    first = build_losses(model, st, CPU)
    carried = {k: v + 1.0 for k, v in first.state_dict().items()}
    again = build_losses(model, st, CPU, carried=carried)
    assert carried and all(torch.equal(v, again.state_dict()[k]) for k, v in carried.items())


def test_the_pk_loader_gives_p_identities_of_k_images(market):
    cfg = _cfg("mfa", "stages.*.p=2", "stages.*.k=2", f"data.root={market}", "data.workers=0")
    dataset = build_train_dataset(cfg["data"])
    model = create_model("mfa", num_classes=dataset.num_train_pids, pretrained=False, tiny=True)
    loader, sampler = build_train_loader(cfg, cfg["stages"][0], 0, model, dataset, device=CPU)
    sampler.set_epoch(1)
    batches = list(loader)
    assert len(batches) == len(sampler) == 4  # 16 images, 4 per batch
    for b in batches:
        assert b["images"].shape == (4, 3, *model.input_size)
        assert sorted(Counter(b["labels"].tolist()).values()) == [2, 2]


def test_a_stage_that_does_not_fit_is_one_clear_error(market):
    dataset = build_train_dataset({"dataset": "market1501", "root": str(market)})
    mfa = create_model("mfa", num_classes=4, pretrained=False, tiny=True)
    with pytest.raises(
        ConfigError, match=r"stage 'prompt' of the config is not a stage of 'mfa' \(its stages: \['main'\]\)"
    ):
        check_stages(_cfg("clipreid"), mfa, dataset)
    with pytest.raises(DatasetError, match=r"4 training identities, fewer than the P=16"):
        check_stages(_cfg("mfa"), mfa, dataset)
    pivl = create_model("pivl", num_classes=4, pretrained=False, tiny=True)
    with pytest.raises(ConfigError, match=r"'part_prompt' needs human-parsing maps: give --parsing-root"):
        check_stages(_cfg("pivl", "stages.*.p=2"), pivl, dataset)
    with pytest.raises(ConfigError, match=r"stage 'main': unknown sampler 'shuffle'; use pk or random"):
        build_sampler({"name": "main", "sampler": "shuffle"}, [0, 0, 1, 1], seed=0)


def test_data_mix_adds_other_people_seen_by_other_cameras_and_evaluation_stays_on_the_dataset(market, tmp_path):
    other = write_dataset("market1501", tmp_path / "other", ids=6, test_ids=2, per_cam=1, cams=3, size=(64, 32))
    own = build_train_dataset({"dataset": "market1501", "root": str(market)})
    entry = {"dataset": "market1501", "root": str(other), "ids": 4, "seed": 3}
    mixed = build_train_dataset({"dataset": "market1501", "root": str(market), "mix": [entry]})
    added = mixed.train[len(own.train) :]
    assert mixed.train[: len(own.train)] == own.train
    assert mixed.query == own.query and mixed.gallery == own.gallery
    # 4 of the 6 other people (3 images each), numbered after the dataset's own people and cameras
    assert len(added) == 12 and {r.pid for r in added} == {4, 5, 6, 7}
    assert {r.camid for r in added} == {2, 3, 4} and {r.camid for r in own.train} == {0, 1}
    assert all("/other/" in r.path for r in added)
    # the same seed draws the same people; all of them without ids
    again = build_train_dataset({"dataset": "market1501", "root": str(market), "mix": [entry]})
    assert [r.path for r in again.train] == [r.path for r in mixed.train]
    everyone = build_train_dataset({"dataset": "market1501", "root": str(market), "mix": [{**entry, "ids": None}]})
    assert everyone.num_train_pids == 4 + 6


@pytest.mark.parametrize(
    "value, words",
    [
        ("3", "must be a list of {dataset: NAME, root: PATH"),
        ("[{dataset: market1501}]", "must be a list of {dataset: NAME, root: PATH"),
        ("[{dataset: market1501, root: x, ids: 0}]", "ids from 1 to"),
        ("[{dataset: market1501, root: x, seed: -1}]", "seed from 0 to"),
        ("[{dataset: market1501, root: x, cams: 2}]", "must be a list of {dataset: NAME, root: PATH"),
    ],
)
def test_a_bad_data_mix_is_one_config_error_naming_it(value, words):
    with pytest.raises(ConfigError, match="config value data.mix: " + ".*" + words.replace("{", r"\{")):
        _cfg("finetune", f"data.mix={value}")
