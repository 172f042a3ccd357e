"""Training and validation data from a preprocessed dataset folder (`stseg-data preprocess`).

Layout expected under `--data`: `train.txt` / `val.txt` split lists naming scene files relative to
the folder (ScanNet, S3DIS: one `.ply` per scene; Synthia4D: one `.ply` per frame, grouped into
temporal windows). Scenes are read with `stseg_data.io.read_scene`, augmented and voxelized with
the dataset's `stseg_data.pipelines` recipe using a per-sample generator seeded by the trainer
(`(index, seed)` keys), so a sample depends only on (run seed, epoch, index).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from stseg_data.errors import StsegInputError
from stseg_data.io import read_scene
from stseg_data.labels import check_label_range
from stseg_data.pipelines import PipelineConfig, config_for, prepare_cloud, prepare_sample
from stseg_data.splits import read_split
from stseg_train.config import TrainConfig
from stseg_train.errors import TrainInputError

PIPELINE_OF = {
    "scannet": "scannet",
    "synthetic": "scannet",
    "s3dis": "s3dis",
    "synthia4d": "synthia4d",
}


def split_items(config: TrainConfig, split: str) -> list[Any]:
    """Scene files (or Synthia4D frame windows) of `split`, with clear errors for bad folders."""
    root = Path(config.data)
    if not config.data or not root.is_dir():
        raise TrainInputError(f"--data {config.data or '(none)'}: dataset folder does not exist")
    if not any(root.iterdir()):
        raise TrainInputError(f"--data {root}: dataset folder is empty")
    list_file = root / f"{split}.txt"
    if not list_file.is_file():
        raise TrainInputError(
            f"{list_file}: split list not found; --data must be a folder written by "
            "`stseg-data preprocess` (with train.txt and val.txt)"
        )
    if config.dataset == "synthia4d":
        from stseg_data.synthia import split_windows

        items: list[Any] = split_windows(root, list_file, config.temporal_window)
    else:
        items = read_split(list_file, root)  # refuses absent scenes and escapes (F28)
    if not items:
        raise TrainInputError(f"{list_file}: the {split} split lists no scenes")
    return items


def pipeline_config(config: TrainConfig) -> PipelineConfig:
    """The dataset's augmentation and voxelization recipe at the configured voxel size."""
    pipeline = config_for(PIPELINE_OF[config.dataset], config.voxel_size)
    return replace(
        pipeline,
        label_mode=config.voxel_labels,
        elastic=pipeline.elastic if config.elastic else (),
        upright_rotation=config.rotation,
    )


def coordinate_features(coords: np.ndarray, voxel_size: float) -> np.ndarray:
    """Per-voxel position features [M, 3]: metres from the scene's centre (S3DIS's rgb+xyz input)."""
    xyz = coords[:, :3].astype(np.float32) * voxel_size
    return (xyz - xyz.mean(0)) / 5.0  # rooms span a few metres: keep features around [-1, 1]


def add_coordinate_features(sample: dict, config: TrainConfig) -> None:
    """Append position features in place when the model takes colour and coordinates."""
    if config.features == "rgb+xyz":
        extra = coordinate_features(sample["coords"], config.voxel_size)
        sample["features"] = np.concatenate([sample["features"], extra], 1).astype(np.float32)


def _item_name(item: Any) -> str:
    if isinstance(item, list):
        return f"{Path(item[0]).stem}+{len(item)}"
    return Path(item).stem


class SceneSamples(Dataset):
    """`dataset[(index, seed)]` -> voxelized sample dict (see `stseg_data.pipelines`)."""

    def __init__(
        self, items: list[Any], config: TrainConfig, *, train: bool, require_labels: bool = True
    ) -> None:
        self.items = items
        self.require_labels = require_labels
        self.config = config
        self.train = train
        self.pipeline = pipeline_config(config)
        self.cache: dict[int, Any] = {}
        cache = config.runtime.cache_scenes
        self.use_cache = config.dataset == "synthetic" if cache is None else cache

    def __len__(self) -> int:
        return len(self.items)

    def name(self, index: int) -> str:
        return _item_name(self.items[index])

    def cloud(self, index: int) -> Any:
        """The scene (PointCloud) or window (FrameWindow) at `index`, cached if configured."""
        if index in self.cache:
            return self.cache[index]
        item = self.items[index]
        if isinstance(item, list):
            from stseg_data.synthia import read_window

            cloud: Any = read_window(item)
        else:
            cloud = read_scene(item)
        if cloud.labels is None:
            if self.require_labels:
                raise TrainInputError(
                    f"{item}: scene has no labels; training and evaluation need them"
                )
            cloud.labels = np.full(len(cloud.xyz), self.config.ignore_label, dtype=np.int64)
        if self.use_cache:
            self.cache[index] = cloud
        return cloud

    def sample(self, index: int, rng: np.random.Generator | None, *, train: bool) -> dict:
        """Augmented (when `train` and `config.augment`) and voxelized scene `index`."""
        cloud = self.cloud(index)
        train = train and self.config.augment
        if hasattr(cloud, "xyzt"):
            sample = prepare_sample(cloud.xyzt, cloud.rgb, cloud.labels, self.pipeline,
                                    train=train, rng=rng)  # fmt: skip
        else:
            sample = prepare_cloud(cloud, self.pipeline, train=train, rng=rng)
        add_coordinate_features(sample, self.config)
        try:
            check_label_range(sample["labels"], self.config.num_classes, str(self.items[index]))
        except StsegInputError as error:
            raise TrainInputError(str(error)) from None
        sample["name"] = self.name(index)
        return sample

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        return self.sample(index, np.random.default_rng(seed), train=self.train)
