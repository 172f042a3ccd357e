"""A map-style dataset of scene files, usable with `torch.utils.data.DataLoader` without this
module importing torch: DataLoader accepts any object with `__len__` and `__getitem__`.
`torch_collate` converts a collated batch to tensors (importing torch only when called).

Augmentation randomness is a function of (seed, epoch, index), so results do not depend on the
worker that loads a sample and differ between epochs (`set_epoch`) and seeds (RELIABILITY F1, F2).
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np

from stseg_data.collate import collate
from stseg_data.io import read_scene
from stseg_data.labels import check_label_range
from stseg_data.pipelines import PipelineConfig, config_for, prepare_cloud
from stseg_data.splits import read_split


class SceneDataset:
    """Scenes (preprocessed files) -> voxelized samples. `num_classes` enables the label guard."""

    def __init__(self, files: list, config: PipelineConfig, *, train: bool, seed: int = 0,
                 num_classes: int | None = None) -> None:  # fmt: skip
        self.files = [Path(f) for f in files]
        self.config, self.train, self.seed, self.epoch = config, train, seed, 0
        self.num_classes = num_classes

    @classmethod
    def from_split(cls, root: str | os.PathLike[str], list_file: str | os.PathLike[str], dataset: str, *,
                   train: bool, voxel_size: float | None = None, **kw) -> SceneDataset:  # fmt: skip
        """Files named (relative to root) in a split list, with the dataset's recipe."""
        return cls(read_split(list_file, root), config_for(dataset, voxel_size), train=train, **kw)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict:
        cloud = read_scene(self.files[index])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = prepare_cloud(cloud, self.config, train=self.train, rng=rng)
        if self.num_classes is not None and "labels" in sample:
            check_label_range(
                sample["labels"], self.num_classes, str(self.files[index])
            )  # F14 guard on CPU
        sample["name"] = self.files[index].stem
        return sample


def torch_collate(samples: list[dict], max_points: int | None = None) -> dict:
    """`collate`, then numpy arrays -> torch tensors (coords int32, features float32, ...)."""
    import torch

    batch = collate(samples, max_points=max_points)
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in batch.items()}


def make_collate_fn(max_points: int | None = None):
    """A picklable collate function for DataLoader workers."""
    return partial(torch_collate, max_points=max_points)


class SequenceDataset:
    """Temporal windows of consecutive preprocessed frames (Synthia4D) -> 4D voxelized samples
    (coords x, y, z, t). Frames are grouped by their first path component under root."""

    def __init__(self, root: str | os.PathLike[str], frames: list, config: PipelineConfig, *, train: bool,
                 length: int = 3, dilation: int = 1, seed: int = 0) -> None:  # fmt: skip
        from stseg_data.synthia import group_sequences, temporal_windows

        sequences = group_sequences([Path(f) for f in frames], root)
        self.windows = [
            w for seq in sequences.values() for w in temporal_windows(seq, length, dilation)
        ]
        self.config, self.train, self.seed, self.epoch = config, train, seed, 0

    @classmethod
    def from_split(cls, root: str | os.PathLike[str], list_file: str | os.PathLike[str], *, train: bool,
                   voxel_size: float | None = None, **kw) -> SequenceDataset:  # fmt: skip
        return cls(
            root,
            read_split(list_file, root),
            config_for("synthia4d", voxel_size),
            train=train,
            **kw,
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        from stseg_data.pipelines import prepare_sample

        clouds = [read_scene(p) for p in self.windows[index]]
        xyzt = np.concatenate(
            [np.column_stack([c.xyz, np.full(len(c), t)]) for t, c in enumerate(clouds)]
        )
        rgb = (
            None if any(c.rgb is None for c in clouds) else np.concatenate([c.rgb for c in clouds])
        )
        labels = (
            None
            if any(c.labels is None for c in clouds)
            else np.concatenate([c.labels for c in clouds])
        )
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = prepare_sample(xyzt, rgb, labels, self.config, train=self.train, rng=rng)
        sample["name"] = str(self.windows[index][0])
        return sample
