"""Training configs: package YAMLs merge base -> variant -> dataset -> --set; unknown keys are rejected."""

from __future__ import annotations

import pytest
import yaml

from reidpipe.cli import main as cli
from reidpipe.errors import ConfigError
from reidpipe.trainers.config import available, load_config

PAPER_VARIANTS = ["clipreid", "mscsa_tgi", "can_cma", "pivl", "mfa"]


def test_every_variant_and_dataset_has_a_config():
    assert set(PAPER_VARIANTS) <= set(available("variants"))
    assert {
        "market1501",
        "dukemtmcreid",
        "msmt17",
        "cuhk03_labeled",
        "cuhk03_detected",
        "occluded_duke",
        "partial_reid",
        "partial_ilids",
        "custom",
    } <= set(available("datasets"))


def test_published_hyperparameters():
    can = load_config("can_cma", "msmt17")
    s1, s2 = can["stages"]
    assert (s1["name"], s1["epochs"], s1["optimizer"]["lr"], s1["schedule"]["name"]) == (
        "prompt",
        120,
        3.5e-4,
        "cosine",
    )
    assert s1["schedule"]["warmup_epochs"] == 10 and s1["schedule"]["min_lr"] == 1e-6
    assert s1["optimizer"]["weight_decay"] == 1e-4 and s1["augment"] == {"flip": 0.0, "pad": 0, "erasing": 0.0}
    assert (s2["epochs"], s2["optimizer"]["lr"], s2["schedule"]["milestones"]) == (60, 5e-6, [30, 50])
    assert (s2["p"], s2["k"]) == (16, 4) and s2["augment"] == {"flip": 0.5, "pad": 10, "erasing": 0.5}
    pivl = load_config("pivl", "market1501")
    assert [(s["name"], s["epochs"]) for s in pivl["stages"]] == [("prompt", 60), ("part_prompt", 20), ("image", 120)]
    assert pivl["stages"][2]["schedule"]["milestones"] == [40, 70]
    mfa = load_config("mfa", "market1501")
    assert mfa["stages"][0]["optimizer"]["name"] == "adam" and (mfa["stages"][0]["p"], mfa["stages"][0]["k"]) == (16, 4)
    vit = load_config("clipreid_vit", "market1501")
    assert vit["model"]["variant"] == "clipreid" and vit["model"]["options"]["backbone"] == "ViT-B-16"
    assert load_config("mscsa_tgi", "dukemtmcreid")["data"]["dataset"] == "dukemtmcreid"


def test_set_overrides_are_yaml_typed_and_address_stages():
    cfg = load_config(
        "clipreid",
        "market1501",
        [
            "stages.*.epochs=2",
            "stages.image.optimizer.lr=1e-5",
            "data.input_size=[64, 32]",
            "model.options.tiny=true",
            "stages.0.losses.i2t_contrastive.weight=0.5",
            "amp=false",
        ],
    )
    assert [s["epochs"] for s in cfg["stages"]] == [2, 2]
    assert cfg["stages"][1]["optimizer"]["lr"] == 1e-5 and cfg["data"]["input_size"] == [64, 32]
    assert cfg["model"]["options"] == {"tiny": True} and cfg["amp"] is False
    assert cfg["stages"][0]["losses"] == {"i2t_contrastive": {"weight": 0.5}}


@pytest.mark.parametrize(
    "item,needle",
    [
        ("stages.*.epoch=2", "stages.*.epoch"),
        ("optimiser.lr=1", "optimiser"),
        ("data.inputsize=[1,2]", "data.inputsize"),
        ("stages.nope.epochs=1", "no stage named 'nope'"),
        ("stages.*.optimizer.lrr=1", "stages.*.optimizer.lrr"),
        ("seed", "key=value"),
    ],
)
def test_unknown_keys_are_rejected(item, needle):
    with pytest.raises(ConfigError, match=needle.replace("*", r"\*").replace(".", r"\.")):
        load_config("mfa", "market1501", [item])


def test_unknown_key_in_a_config_file(tmp_path, capsys):
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump({"data": {"workerz": 2}}))
    rc = cli(["train", "--variant", "mfa", "--dataset", "market1501", "--data-root", str(tmp_path), "--config", str(f)])
    assert rc == 10 and "data.workerz" in capsys.readouterr().err
    assert cli(["train", "--variant", "nope", "--dataset", "market1501", "--data-root", str(tmp_path)]) == 10


def test_print_config(tmp_path, capsys):
    assert (
        cli(
            [
                "train",
                "--variant",
                "mfa",
                "--dataset",
                "market1501",
                "--data-root",
                str(tmp_path),
                "--set",
                "stages.main.epochs=3",
                "--print-config",
            ]
        )
        == 0
    )
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["stages"][0]["epochs"] == 3 and cfg["data"]["root"] == str(tmp_path)


def test_train_on_a_test_only_dataset_is_a_dataset_error(tmp_path, capsys):
    from reidpipe.reid.datasets.synthetic import write_dataset

    write_dataset("partial_ilids", tmp_path, ids=0, test_ids=2, size=(16, 8))
    rc = cli(
        [
            "train",
            "--variant",
            "mfa",
            "--dataset",
            "partial_ilids",
            "--data-root",
            str(tmp_path),
            "--output",
            str(tmp_path / "run"),
            "--set",
            "model.pretrained=false",
            "--set",
            "model.options.tiny=true",
        ]
    )
    assert rc == 9 and "no training split" in capsys.readouterr().err


def test_every_shipped_recipe_passes_the_value_checks():
    from reidpipe.trainers.config import check_values

    for variant in available("variants"):
        for dataset in available("datasets"):
            cfg = load_config(variant, dataset)
            assert check_values(cfg) is cfg


def test_a_resumed_runs_saved_config_is_checked_too(tmp_path):
    from reidpipe.errors import ConfigError

    saved = load_config("mfa", "market1501")
    saved["stages"][0]["epochs"] = -1  # a hand-edited config.yaml of a run folder
    with pytest.raises(ConfigError, match="stages.main.epochs"):
        load_config(overrides=[], start=saved)
