"""Config resolution: recipes, files in three formats, --set overrides, validation, identity."""

from __future__ import annotations

import json

import pytest

from stseg_train.config import (
    RECIPES,
    TrainConfig,
    identity_diff,
    identity_hash,
    parse_set_options,
    resolve_config,
)
from stseg_train.errors import TrainInputError


def test_scannet_recipe_is_the_original() -> None:
    config = resolve_config("scannet")
    assert (config.model, config.voxel_size, config.batch_size, config.max_iter) == (
        "Res16UNet34C",
        0.02,
        9,
        120000,
    )
    assert (config.optimizer, config.lr, config.momentum, config.dampening) == (
        "sgd",
        0.1,
        0.9,
        0.1,
    )
    assert (config.weight_decay, config.scheduler, config.in_channels) == (1e-4, "poly", 3)


def test_s3dis_recipe_uses_colour_and_coordinates_and_kernel_5() -> None:
    config = resolve_config("s3dis")
    assert (config.model, config.voxel_size, config.conv1_kernel_size) == ("Res16UNet18", 0.05, 5)
    assert (config.in_channels, config.num_classes) == (6, 13)
    assert resolve_config("synthia4d").dimension == 4


@pytest.mark.parametrize("suffix", [".yaml", ".toml", ".json"])
def test_config_file_formats(tmp_path, suffix: str) -> None:
    path = tmp_path / f"c{suffix}"
    text = {
        ".yaml": "lr: 0.05\nscheduler: step\namp: true\n",
        ".toml": 'lr = 0.05\nscheduler = "step"\namp = true\n',
        ".json": json.dumps({"lr": 0.05, "scheduler": "step", "amp": True}),
    }[suffix]
    path.write_text(text)
    config = resolve_config("scannet", config_file=path)
    assert (config.lr, config.scheduler, config.amp) == (0.05, "step", True)


def test_precedence_file_then_options_then_set(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.05\nbatch_size: 3\nmax_iter: 7\n")
    config = resolve_config(
        "scannet",
        config_file=path,
        options={"batch_size": 5, "max_iter": None},
        sets=["lr=0.2", "adam_betas=[0.8, 0.9]"],
    )
    assert (config.lr, config.batch_size, config.max_iter) == (0.2, 5, 7)
    assert config.adam_betas == (0.8, 0.9)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["nope=1"], "unknown config key"),
        (["batch_size=abc"], "expected int"),
        (["batch_size=1.5"], "expected int"),
        (["amp=maybe"], "expected bool"),
        (["lr"], "expected key=value"),
        (["optimizer=rmsprop"], "optimizer must be"),
        (["voxel_size=-1"], "voxel_size must be > 0"),
    ],
)
def test_bad_overrides_are_clear_errors(sets: list[str], message: str) -> None:
    with pytest.raises(TrainInputError, match=message):
        resolve_config("scannet", sets=sets)


def test_bad_config_files(tmp_path) -> None:
    with pytest.raises(TrainInputError, match="not found"):
        resolve_config("scannet", config_file=tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [unclosed\n")
    with pytest.raises(TrainInputError, match="could not parse"):
        resolve_config("scannet", config_file=bad)
    listy = tmp_path / "list.json"
    listy.write_text("[1, 2]")
    with pytest.raises(TrainInputError, match="expected a mapping"):
        resolve_config("scannet", config_file=listy)
    with pytest.raises(TrainInputError, match="unknown config format"):
        (tmp_path / "c.ini").write_text("x")
        resolve_config("scannet", config_file=tmp_path / "c.ini")
    with pytest.raises(TrainInputError, match="unknown dataset"):
        resolve_config("kitti")


def test_identity_hash_ignores_schedule_length_but_not_model() -> None:
    base = resolve_config("scannet")
    longer = resolve_config("scannet", sets=["max_iter=5"])
    other = resolve_config("scannet", sets=["model=Res16UNet18"])
    assert identity_hash(base) == identity_hash(longer)
    assert identity_hash(base) != identity_hash(other)
    assert identity_diff(base.to_dict(), other) == [
        "model: run has 'Res16UNet34C', this command has 'Res16UNet18'"
    ]


def test_set_values_are_yaml_scalars() -> None:
    assert parse_set_options(["a=0.1", "b=true", "c=hello", "d="]) == {
        "a": 0.1,
        "b": True,
        "c": "hello",
        "d": "",
    }
    assert set(RECIPES) == {"scannet", "s3dis", "synthia4d", "synthetic"}
    assert TrainConfig().to_dict()["adam_betas"] == [0.9, 0.999]
