"""Training recipes: the original's defaults, the CPU recipe, overrides, and the norms' momentum."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssen_instance.errors import InstanceInputError
from ssen_instance.model import build_embedding_model
from ssen_instance.scenes import SsenScene, instance_ids, write_ssen_scene
from ssen_instance.toy import toy_room
from ssen_instance.train import RECIPES, ssen_config


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    room = toy_room(num_objects=2, density=40.0, size=1.5, seed=3)
    scene = SsenScene(room.xyz, room.rgb, room.semantic, instance_ids(room.semantic, room.instance),
                      room.semantic, "scene0001_00")  # fmt: skip
    write_ssen_scene(tmp_path / "scene0001_00_semantic_segment.pt", scene)
    return tmp_path


def test_default_recipe_is_the_original(data: Path, tmp_path: Path) -> None:
    config = ssen_config(data, tmp_path / "run")
    assert (config.model, config.voxel_size, config.lr, config.batch_size) == (
        "Mink16UNet34C",
        0.02,
        1e-4,
        8,
    )
    assert (config.optimizer, config.scheduler, config.step_size, config.step_gamma) == (
        "adam",
        "step",
        10000,
        0.8,
    )
    assert config.clip_grad_norm == 0.5 and config.bn_momentum == 0.02
    assert config.max_iter == 60000 and config.extra["recipe"] == "ssen"


def test_cpu_recipe_and_overrides(data: Path, tmp_path: Path) -> None:
    config = ssen_config(data, tmp_path / "run", recipe="synthetic-cpu")
    for key, value in RECIPES["synthetic-cpu"].items():
        if key == "background_head":  # kept in extra, not TrainConfig
            assert config.extra[key] == value, key
        else:
            assert getattr(config, key) == value, key
    assert config.voxel_size == 0.05 and config.bn_momentum == 0.1
    # an explicit value wins over the recipe, None keeps the recipe's
    config = ssen_config(
        data, tmp_path / "run", recipe="synthetic-cpu", lr=3e-4, model=None, max_iter=7
    )
    assert config.lr == 3e-4 and config.model == "Res16UNet14F" and config.max_iter == 7
    assert config.val_freq > config.max_iter  # no validation pass inside SSEN training
    with pytest.raises(InstanceInputError, match="unknown recipe"):
        ssen_config(data, tmp_path / "run", recipe="fast")
    with pytest.raises(InstanceInputError, match="unknown training setting"):
        ssen_config(data, tmp_path / "run", learning_rate=1.0)


def test_loss_constants_from_recipe_or_override(data: Path, tmp_path: Path) -> None:
    # the original recipe keeps SSEN's loss (no entry: the trainer's defaults)
    assert "loss" not in ssen_config(data, tmp_path / "run").extra
    config = ssen_config(data, tmp_path / "run", loss={"weight_pull": 4.0, "delta_pull": 0.05})
    assert config.extra["loss"] == {
        "delta_pull": 0.05, "delta_push": 0.5, "weight_pull": 4.0, "weight_push": 10.0,
        "weight_reg": 0.0, "count_power": 1.0,
    }  # fmt: skip
    with pytest.raises(InstanceInputError, match=r"unknown loss setting.*delta_pul"):
        ssen_config(data, tmp_path / "run", loss={"delta_pul": 0.1})


def test_bn_momentum_reaches_the_norms() -> None:
    model = build_embedding_model("Res16UNet14A", 8, bn_momentum=0.1)
    momenta = {m.momentum for m in model.modules() if hasattr(m, "running_mean")}
    assert momenta == {0.1}
    assert model.model_args["bn_momentum"] == 0.1  # type: ignore[index]
