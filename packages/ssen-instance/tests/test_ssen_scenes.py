"""SSEN N x 9 scene files: round trip, instance numbering, validation, ScanNet preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ssen_instance.errors import SceneFileError
from ssen_instance.scenes import (
    SsenScene,
    instance_ids,
    list_scene_files,
    preprocess_scannet,
    read_ssen_scene,
    write_ssen_scene,
)
from stseg_data.errors import StsegInputError

WALL, FLOOR, CHAIR, TABLE = 0, 1, 4, 6


def _scene(n: int = 40) -> SsenScene:
    rng = np.random.default_rng(0)
    semantic = np.array([WALL, FLOOR, CHAIR, TABLE, 255] * (n // 5))
    raw = np.array([7, 8, 3, 9, 0] * (n // 5))
    predicted = semantic.copy()
    predicted[:5] = CHAIR
    return SsenScene(rng.random((n, 3)), rng.random((n, 3)).astype(np.float32), semantic,
                     instance_ids(semantic, raw), predicted, "s")  # fmt: skip


def test_instance_ids() -> None:
    semantic = np.array([WALL, CHAIR, CHAIR, TABLE, 255, CHAIR])
    raw = np.array([5, 12, 12, 4, 9, 0])
    # wall, ignore and unannotated -> 0; objects renumbered 1..K in raw-id order
    assert instance_ids(semantic, raw).tolist() == [0, 2, 2, 1, 0, 0]
    assert instance_ids(np.array([WALL]), np.array([3])).tolist() == [0]


def test_round_trip(tmp_path: Path) -> None:
    scene = _scene()
    path = tmp_path / "s_semantic_segment.pt"
    write_ssen_scene(path, scene)
    table = torch.load(path, weights_only=True)
    assert table.shape == (40, 9) and table[4, 6] == -1  # ignore stored as -1
    back = read_ssen_scene(path)
    assert back.name == "s"
    np.testing.assert_allclose(back.xyz, scene.xyz, atol=1e-6)
    np.testing.assert_allclose(back.rgb, scene.rgb, atol=1e-5)
    assert back.semantic.tolist() == scene.semantic.tolist()
    assert back.instance.tolist() == scene.instance.tolist()
    assert back.predicted.tolist() == scene.predicted.tolist()
    assert list_scene_files(tmp_path) == [path] and list_scene_files(path) == [path]


def test_bad_scene_files(tmp_path: Path) -> None:
    scene = _scene()
    scene.predicted = scene.predicted.copy()
    scene.predicted[3] = 25
    write_ssen_scene(tmp_path / "bad.pt", scene)
    with pytest.raises(SceneFileError, match="predicted semantic id 25 at row 3"):
        read_ssen_scene(tmp_path / "bad.pt")
    torch.save(torch.zeros(5, 4), tmp_path / "narrow.pt")
    with pytest.raises(StsegInputError, match=r"\[N, 9\]"):
        read_ssen_scene(tmp_path / "narrow.pt")
    with pytest.raises(SceneFileError, match="no SSEN scene files"):
        list_scene_files(
            tmp_path / "empty_dir" if (tmp_path / "empty_dir").mkdir() is None else tmp_path
        )


def test_preprocess_synthetic_scannet(tmp_path: Path) -> None:
    from stseg_data.synth import write_synthetic

    write_synthetic("scannet", tmp_path / "raw", 1, seed=3, spacing=0.12)
    summary = preprocess_scannet(tmp_path / "raw", tmp_path / "pt")
    assert summary["prediction"] == "ground truth" and len(summary["scenes"]) == 1
    scene = read_ssen_scene(next((tmp_path / "pt").glob("*.pt")))
    background = np.isin(scene.semantic, [WALL, FLOOR, 255])
    assert (scene.instance[background] == 0).all()
    ids = np.unique(scene.instance[scene.instance > 0])
    assert ids.tolist() == list(range(1, ids.size + 1)) and ids.size >= 1
    for k in ids:  # each instance has one class
        assert np.unique(scene.semantic[scene.instance == k]).size == 1
    assert (scene.predicted == scene.semantic).all()
