"""The `synthetic` recipe is what the READMEs' recipe table says (packages/stseg-train/README.md,
"The main job"): the values a user reads there are the ones `stseg-train synthetic` runs with."""

from __future__ import annotations

from stseg_train.config import resolve_config


def test_the_synthetic_recipe_matches_the_readme_table() -> None:
    config = resolve_config("synthetic")
    assert (config.model, config.voxel_size, config.voxel_labels) == (
        "Res16UNet14F",
        0.1,
        "majority",
    )
    assert (config.batch_size, config.num_workers, config.cpu_procs) == (2, 1, 0)  # 1 process
    assert (config.optimizer, config.lr, config.scheduler) == ("adam", 0.001, "poly")
    assert (config.weight_decay, config.bn_momentum, config.max_iter) == (0.0001, 0.1, 720)
    assert config.class_balance == 0.5
    assert (config.rotation, config.elastic, config.augment) == ("quarter", False, True)
    assert config.eval_rotations == 4
    # 100 rooms, one in five held out
    assert (config.synthetic_train_scenes, config.synthetic_val_scenes) == (80, 20)


def test_a_set_option_still_wins_over_the_recipe() -> None:
    config = resolve_config("synthetic", sets=["max_iter=10", "rotation=none"])
    assert (config.max_iter, config.rotation, config.model) == (10, "none", "Res16UNet14F")
