"""Evaluation of a segmentation network on whole scenes: on voxels and on the original points.

Per scene: centre the cloud horizontally (the upright axis is kept: training never shifts it),
for each of `rotations` rotations about the upright axis voxelize it with the evaluation pipeline (no augmentation), run the network, and add the voxel logits to every
point through the inverse map. Voxel metrics use the first rotation's voxels and voxel labels;
point metrics use the rotation-averaged logits against every point's label. This is the same
input convention as `stseg_models.Segmenter`, so its predictions match these numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from stseg_data.collate import collate
from stseg_data.pipelines import prepare_sample
from stseg_train.config import TrainConfig
from stseg_train.data import SceneSamples, add_coordinate_features
from stseg_train.metrics import confusion_matrix, summarize

Forward = Callable[[torch.nn.Module, dict[str, Any]], torch.Tensor]
PredictionHook = Callable[[int, str, np.ndarray, Any], None]  # (index, name, labels [N], cloud)


def class_names(config: TrainConfig) -> list[str]:
    """Display names of the classes of `config.dataset` (numbers if the count differs)."""
    from stseg_data import labels

    names = {
        "scannet": labels.SCANNET_CLASS_NAMES,
        "synthetic": labels.SCANNET_CLASS_NAMES,
        "s3dis": labels.S3DIS_CLASS_NAMES,
        "synthia4d": labels.SYNTHIA_CLASS_NAMES,
    }[config.dataset]
    if len(names) != config.num_classes:
        return [str(i) for i in range(config.num_classes)]
    return list(names)


def _rotate_z(xyz: np.ndarray, angle: float, upright: int) -> np.ndarray:
    if angle == 0.0:
        return xyz
    c, s = math.cos(angle), math.sin(angle)
    a, b = [i for i in range(3) if i != upright]
    out = xyz.copy()
    out[:, a] = c * xyz[:, a] - s * xyz[:, b]
    out[:, b] = s * xyz[:, a] + c * xyz[:, b]
    return out


def _to_torch(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


def scene_logits(
    model: torch.nn.Module,
    forward: Forward,
    cloud: Any,
    samples: SceneSamples,
    rotations: int = 1,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Rotation-averaged point logits float32 [N, C] and the first rotation's voxel sample
    (with its voxel `logits` added)."""
    config = samples.config
    xyz = np.asarray(cloud.xyzt if hasattr(cloud, "xyzt") else cloud.xyz, dtype=np.float64)
    centred = xyz.copy()
    # horizontal axes only (as stseg_models.Segmenter): training never shifts the upright axis
    upright = samples.pipeline.upright_axis
    horizontal = [a for a in range(3) if a != upright]
    centred[:, horizontal] -= xyz[:, horizontal].mean(0)
    acc = np.zeros((len(xyz), config.num_classes), dtype=np.float32)
    first: dict[str, Any] = {}
    for k in range(rotations):
        points = centred.copy()
        points[:, :3] = _rotate_z(centred[:, :3], 2 * math.pi * k / rotations,
                                  samples.pipeline.upright_axis)  # fmt: skip
        sample = prepare_sample(points, cloud.rgb, cloud.labels, samples.pipeline, train=False)
        add_coordinate_features(sample, config)
        sample["name"] = "eval"
        with torch.no_grad():
            logits = forward(model, _to_torch(collate([sample]))).float().cpu().numpy()
        inverse = sample["inverse"]
        kept = inverse >= 0  # points cut by clip bounds get no vote
        acc[kept] += logits[inverse[kept]]
        if k == 0:
            first = {**sample, "logits": logits}
    return acc / rotations, first


def evaluate_scenes(
    model: torch.nn.Module,
    forward: Forward,
    samples: SceneSamples,
    *,
    rotations: int = 1,
    on_prediction: PredictionHook | None = None,
) -> dict[str, Any]:
    """metrics.summarize() on points (top level) plus `voxels` (the same on voxels) and `scenes`."""
    config = samples.config
    c = config.num_classes
    conf_voxels = np.zeros((c, c), dtype=np.int64)
    conf_points = np.zeros((c, c), dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        for index in range(len(samples)):
            cloud = samples.cloud(index)
            logits, first = scene_logits(model, forward, cloud, samples, rotations)
            conf_voxels += confusion_matrix(first["logits"].argmax(1), first["labels"], c,
                                            config.ignore_label)  # fmt: skip
            pred = logits.argmax(1)
            conf_points += confusion_matrix(pred, cloud.labels, c, config.ignore_label)
            if on_prediction is not None:
                on_prediction(index, samples.name(index), pred, cloud)
    finally:
        model.train(was_training)
    names = class_names(config)
    summary = summarize(conf_points, names)
    summary["voxels"] = summarize(conf_voxels, names)
    summary["scenes"] = len(samples)
    summary["rotations"] = rotations
    return summary
