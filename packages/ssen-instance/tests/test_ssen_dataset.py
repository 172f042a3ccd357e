"""SSEN dataset: background removal modes, augmentation reproducibility, voxels, collate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ssen_instance.dataset import SsenDataset, collate_batch, foreground_mask
from ssen_instance.errors import SceneFileError
from ssen_instance.scenes import SsenScene, instance_ids, write_ssen_scene
from ssen_instance.toy import toy_room

WALL, CHAIR = 0, 4


def _write(tmp_path: Path, name: str = "a", flip_predictions: bool = True) -> Path:
    room = toy_room(num_objects=3, density=200.0, size=2.0, seed=1)
    predicted = room.semantic.copy()
    if flip_predictions:
        walls = np.flatnonzero(room.semantic == WALL)[:50]
        predicted[walls] = CHAIR  # some wall points predicted as chair
    scene = SsenScene(
        room.xyz,
        room.rgb,
        room.semantic,
        instance_ids(room.semantic, room.instance),
        predicted,
        name,
    )
    path = tmp_path / f"{name}_semantic_segment.pt"
    write_ssen_scene(path, scene)
    return path


def test_foreground_modes(tmp_path: Path) -> None:
    ds = SsenDataset([_write(tmp_path)], train=False)
    scene = ds.scene(0)
    pred, gt, union = (foreground_mask(scene, m) for m in ("predicted", "gt", "union"))
    assert (union == (pred | gt)).all() and (pred & ~gt).sum() == 50
    sample = ds[0]
    assert ds.background == "predicted" and not ds.augment
    assert sample["point_index"].size == pred.sum()
    # points kept only by a wrong prediction carry no instance
    assert sample["labels"].min() == 0 and sample["labels"].max() == scene.instance.max()
    assert sample["coords"].min() == 0 and sample["features"].shape == (len(sample["coords"]), 3)
    assert len(sample["inverse"]) == len(sample["point_index"])


def test_training_mix_and_reproducible_augmentation(tmp_path: Path) -> None:
    ds = SsenDataset([_write(tmp_path)], train=True)
    a, b, c = ds[(0, 7)], ds[(0, 7)], ds[(0, 8)]
    assert np.array_equal(a["coords"], b["coords"]) and np.array_equal(a["features"], b["features"])
    assert not (len(a["coords"]) == len(c["coords"]) and np.array_equal(a["coords"], c["coords"]))
    sizes = {len(ds[(0, seed)]["point_index"]) for seed in range(12)}
    assert len(sizes) >= 2  # the background choice varies with the seed


def test_only_background_scene(tmp_path: Path) -> None:
    room = toy_room(num_objects=0, density=100.0, size=1.0, seed=0)
    scene = SsenScene(room.xyz, room.rgb, room.semantic, room.instance * 0, room.semantic, "bg")
    write_ssen_scene(tmp_path / "bg.pt", scene)
    sample = SsenDataset([tmp_path / "bg.pt"], train=False)[0]
    assert len(sample["coords"]) == 1 and sample["labels"].tolist() == [0]


def test_collate_and_bad_arguments(tmp_path: Path) -> None:
    path = _write(tmp_path)
    ds = SsenDataset([path, path], train=True)
    batch = collate_batch([ds[(0, 1)], ds[(1, 2)]])
    assert batch["coords"].shape[1] == 4 and set(batch["coords"][:, 0].tolist()) == {0, 1}
    assert batch["names"] == ["a", "a"] and len(batch["labels"]) == len(batch["coords"])
    with pytest.raises(SceneFileError, match="no scene files"):
        SsenDataset([])
    with pytest.raises(SceneFileError, match="background"):
        SsenDataset([path], background="walls")  # type: ignore[arg-type]
