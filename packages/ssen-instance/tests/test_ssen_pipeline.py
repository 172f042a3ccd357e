"""Evaluation's semantic sources: the semantic pass, the stored prediction, the ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ssen_instance.cluster import ClusterParams
from ssen_instance.errors import InstanceInputError
from ssen_instance.grouping import GroupingConfig
from ssen_instance.inference import InstanceSegmenter
from ssen_instance.model import build_embedding_model, instance_inference_spec
from ssen_instance.pipeline import evaluate_path, scene_semantic
from ssen_instance.scenes import SsenScene, instance_ids, read_ssen_scene, write_ssen_scene
from ssen_instance.toy import toy_room

NAME = "Res16UNet14A"


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ssen_pipeline")
    room = toy_room(num_objects=3, density=60.0, size=2.0, seed=5)
    # the stored "prediction" calls everything wall: no instance can come from it
    wall = np.zeros(len(room.xyz), np.int64)
    scene = SsenScene(room.xyz, room.rgb, room.semantic, instance_ids(room.semantic, room.instance),
                      wall, "scene0011_00")  # fmt: skip
    write_ssen_scene(root / "scene0011_00_semantic_segment.pt", scene)
    return root


def test_scene_semantic_columns(scene_dir: Path) -> None:
    scene = read_ssen_scene(scene_dir / "scene0011_00_semantic_segment.pt")
    assert scene_semantic(scene, "predict") is None
    assert (scene_semantic(scene, "stored") == 0).all()
    gt = scene_semantic(scene, "gt")
    assert gt is not None and np.array_equal(gt, scene.semantic)
    assert np.isin(gt, range(2, 20)).sum() > 0
    with pytest.raises(InstanceInputError, match="semantic source"):
        scene_semantic(scene, "oracle")  # type: ignore[arg-type]


def test_evaluate_with_ground_truth_semantics(scene_dir: Path, tmp_path: Path) -> None:
    segmenter = InstanceSegmenter(
        None, None, build_embedding_model(NAME, 8), instance_inference_spec(8, 0.05),
        GroupingConfig(params=ClusterParams(min_cluster_size=20)),
    )  # fmt: skip
    stored = evaluate_path(scene_dir, segmenter, out=tmp_path / "stored", semantic="stored")
    gt = evaluate_path(scene_dir, segmenter, out=tmp_path / "gt", semantic="gt")
    # all-wall semantics leave nothing to cluster; ground truth leaves the objects
    assert stored.ap50 == 0.0
    summary = json.loads((tmp_path / "gt" / "metrics.json").read_text())
    assert summary["semantic_source"] == "gt"
    lines = (tmp_path / "gt" / "pred" / "scene0011_00.txt").read_text().split()
    assert len(lines) > 0 and gt.ap25 >= 0.0
    assert (tmp_path / "stored" / "pred" / "scene0011_00.txt").read_text().strip() == ""
    with pytest.raises(InstanceInputError, match="contradicts"):
        evaluate_path(scene_dir, segmenter, stored_semantic=True, semantic="gt")
