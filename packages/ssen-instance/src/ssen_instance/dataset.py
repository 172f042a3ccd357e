"""SSEN training / evaluation samples: background removal, augmentation, 2 cm voxels.

Background removal as the original: the instance network only sees voxels of instance classes.
Which voxels count as foreground is, per training sample, drawn from three choices with equal
chance: the predicted semantics, the ground truth, or their union (so the network learns from
the prediction's mistakes as well as from clean masks); at evaluation, the prediction only.

Background targets (for the optional background head, `ssen_instance.model`): per voxel, the share
of its annotated points whose ground-truth class is not an instance class (NaN: none annotated).

Augmentations (training): chromatic translation and jitter, rotation about the upright axis
(full circle) with a small tilt about x and y, scaling 0.9-1.1, random flips of x and y, and a
random translation. Samples are addressed as `dataset[(index, seed)]` (stseg-train's convention:
the seed makes the augmentation reproducible).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from ssen_instance.errors import SceneFileError
from ssen_instance.scenes import SsenScene, read_ssen_scene
from stseg_data import augment
from stseg_data.labels import IGNORE_LABEL, SCANNET_INSTANCE_CLASS_IDS
from stseg_data.voxelize import voxelize

Background = Literal["mix", "predicted", "gt", "union"]
ROTATION = ((-math.pi / 64, math.pi / 64), (-math.pi / 64, math.pi / 64), (-math.pi, math.pi))
SCALE = (0.9, 1.1)
TRANSLATION = ((-0.2, 0.2), (-0.2, 0.2), (0.0, 0.0))


def foreground_mask(scene: SsenScene, which: str) -> np.ndarray:
    """bool [N]: points kept for the instance network ('predicted', 'gt' or 'union')."""
    classes = np.asarray(SCANNET_INSTANCE_CLASS_IDS)
    pred = np.isin(scene.predicted, classes)
    gt = np.isin(scene.semantic, classes)
    return {"predicted": pred, "gt": gt, "union": pred | gt}[which]


def background_share(semantic: np.ndarray, inverse: np.ndarray, voxels: int) -> np.ndarray:
    """float32 [voxels]: share of each voxel's annotated points (ground-truth training ids, 255
    unannotated) that are background (not an instance class); NaN where none is annotated."""
    semantic = np.asarray(semantic, np.int64)
    annotated = semantic != IGNORE_LABEL
    background = annotated & ~np.isin(semantic, SCANNET_INSTANCE_CLASS_IDS)
    total = np.bincount(inverse, weights=annotated, minlength=voxels)
    share = np.bincount(inverse, weights=background, minlength=voxels) / np.maximum(total, 1)
    return np.where(total > 0, share, np.nan).astype(np.float32)


def augment_scene(
    xyz: np.ndarray, rgb: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """SSEN's augmentations (new arrays; inputs untouched)."""
    rgb = augment.chromatic_translation(rgb, rng, p=0.95, ratio=0.1)
    rgb = augment.chromatic_jitter(rgb, rng, p=0.95, std=0.05)
    xyz = augment.random_rotation(xyz, rng, ROTATION)
    xyz = augment.random_scale(xyz, rng, SCALE)
    xyz = augment.random_flip(xyz, rng, axes=(0, 1), p=0.5)
    xyz = augment.random_translation(xyz, rng, TRANSLATION)
    return xyz, rgb


class SsenDataset(Dataset):
    """Instance-network samples from SSEN scene files.

    Sample dict: coords int32 [M, 3], features float32 [M, 3] (rgb - 0.5), labels int64 [M]
    (instance id per voxel, 0 none / disagreeing), background float32 [M] (`background_share`),
    inverse int64 [N'] (kept point -> voxel), point_index int64 [N'] (kept points in the scene),
    name.
    """

    def __init__(
        self,
        files: Sequence[str | Path],
        *,
        train: bool = True,
        voxel_size: float = 0.02,
        background: Background | None = None,
        augment: bool | None = None,
        cache: bool = True,
    ) -> None:
        if not files:
            raise SceneFileError("no scene files given")
        self.files = [Path(f) for f in files]
        self.train = train
        self.voxel_size = voxel_size
        self.background = background or ("mix" if train else "predicted")
        if self.background not in ("mix", "predicted", "gt", "union"):
            raise SceneFileError(f"unknown background mode {self.background!r}")
        self.augment = train if augment is None else augment
        self._cache: dict[int, SsenScene] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.files)

    def scene(self, index: int) -> SsenScene:
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        scene = read_ssen_scene(self.files[index])
        if self._cache is not None:
            self._cache[index] = scene
        return scene

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, 0)
        rng = np.random.default_rng(seed)
        scene = self.scene(index)
        mode = self.background
        if mode == "mix":
            mode = ("predicted", "gt", "union")[int(rng.integers(3))]
        keep = np.flatnonzero(foreground_mask(scene, mode))
        if keep.size == 0:  # only background: one dummy voxel, no instance (loss 0)
            keep = np.array([0])
        xyz, rgb = scene.xyz[keep], scene.rgb[keep]
        if self.augment:
            xyz, rgb = augment_scene(xyz, rgb, rng)
        instance = scene.instance[keep]
        if mode != "gt":
            # points kept only by the prediction but not an instance class in truth: no instance
            instance = np.where(
                np.isin(scene.semantic[keep], SCANNET_INSTANCE_CLASS_IDS), instance, 0
            )
        vox = voxelize(
            xyz, self.voxel_size, features=rgb - 0.5, labels=instance, ignore_label=IGNORE_LABEL
        )
        assert vox.features is not None and vox.labels is not None
        labels = np.where(vox.labels == IGNORE_LABEL, 0, vox.labels)
        return {
            "coords": (vox.coords - vox.coords.min(axis=0)).astype(np.int32),
            "features": vox.features.astype(np.float32),
            "labels": labels.astype(np.int64),
            "background": background_share(scene.semantic[keep], vox.inverse, len(vox)),
            "inverse": vox.inverse,
            "point_index": keep,
            "name": scene.name,
        }


def collate_batch(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Torch batch: coords int32 [M, 4] (batch first), features [M, 3], labels [M],
    background [M], names."""
    coords = [
        np.column_stack([np.full(len(s["coords"]), b, np.int32), s["coords"]])
        for b, s in enumerate(samples)
    ]
    return {
        "coords": torch.from_numpy(np.concatenate(coords).astype(np.int32)),
        "features": torch.from_numpy(np.concatenate([s["features"] for s in samples])),
        "labels": torch.from_numpy(np.concatenate([s["labels"] for s in samples])),
        "background": torch.from_numpy(np.concatenate([s["background"] for s in samples])),
        "names": [s["name"] for s in samples],
    }
