"""Per-dataset train and eval pipelines: scene -> augmented, voxelized sample.

A sample is a dict of numpy arrays:
  coords   int32 [M, D]   voxel coordinates (D = 3, or 4 with time for Synthia4D windows)
  features float32 [M, 3] voxel colour minus 0.5 (a scene without colour is an error unless
                          the config sets `fill_color`, RELIABILITY F7)
  labels   int64 [M]      voxel labels (255 ignore), or absent when the scene has none
  inverse  int64 [N]      voxel row of every input point (after dropout in training)
  index    int64 [M]      representative point of each voxel
  n_points int            points fed to the voxelizer
The recipes follow the original: ScanNet/S3DIS 2 cm voxels (metres), Synthia 30 cm voxels in
centimetres (30.0) with y up.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from stseg_data import augment as A
from stseg_data.errors import StsegInputError
from stseg_data.pointcloud import PointCloud
from stseg_data.voxelize import voxelize


@dataclass(frozen=True)
class PipelineConfig:
    voxel_size: float
    upright_axis: int = 2
    rotation_small: float = np.pi / 64
    scale_bounds: tuple[float, float] = (0.9, 1.1)
    elastic: tuple[tuple[float, float], ...] = ((0.2, 0.4), (0.8, 1.6))  # (granularity, magnitude)
    dropout: float = 0.2
    flip_axes: tuple[int, ...] = (0, 1)
    translation: tuple[tuple[float, float], ...] = ((-0.2, 0.2), (-0.2, 0.2), (0.0, 0.0))
    clip_bounds: tuple | None = None
    chromatic: bool = True
    fill_color: float | None = None  # colour in [0, 1] used for scenes without colour
    # rotation about the upright axis: "full" (uniform angle, the original), "quarter" (k x 90
    # degrees: for axis-aligned scenes, keeps walls on the grid) or "none"; tilts stay small
    upright_rotation: str = "full"
    label_mode: str = "unanimous"  # voxel labels: "unanimous" (original) or "majority" (voxelize)
    extra: dict = field(default_factory=dict)


CONFIGS = {
    "scannet": PipelineConfig(voxel_size=0.02),
    "s3dis": PipelineConfig(voxel_size=0.05, clip_bounds=None),
    "synthia4d": PipelineConfig(
        voxel_size=30.0,
        upright_axis=1,
        elastic=((80.0, 300.0),),
        flip_axes=(0, 2, 3),
        translation=((-0.1, 0.1), (0.0, 0.0), (-0.1, 0.1)),
        clip_bounds=((-1800, 1800), (-1800, 1800), (-1800, 1800)),
    ),
}


def config_for(dataset: str, voxel_size: float | None = None) -> PipelineConfig:
    """The recipe of a dataset ('scannet', 's3dis', 'synthia4d'), optionally with another voxel size."""
    if dataset not in CONFIGS:
        raise StsegInputError(f"unknown dataset {dataset!r}; choose one of {', '.join(CONFIGS)}")
    config = CONFIGS[dataset]
    return config if voxel_size is None else replace(config, voxel_size=voxel_size)


def augment_geometry(
    xyz: np.ndarray, rng: np.random.Generator, config: PipelineConfig
) -> np.ndarray:
    """Training geometry: elastic (each granularity), rotation, scale, flips, translation."""
    scale = config.voxel_size / 0.02 if config.upright_axis == 2 else 1.0
    for granularity, magnitude in config.elastic:
        if rng.random() < 0.95:
            xyz = A.elastic_distortion(xyz, rng, granularity * scale, magnitude * scale / 10.0)
    bounds = [(-config.rotation_small, config.rotation_small)] * 3
    bounds[config.upright_axis] = (-np.pi, np.pi) if config.upright_rotation == "full" else (0, 0)
    xyz = A.random_rotation(xyz, rng, bounds)
    if config.upright_rotation == "quarter":
        xyz = A.random_quarter_turn(xyz, rng, config.upright_axis)
    xyz = A.random_scale(xyz, rng, config.scale_bounds)
    xyz = A.random_flip(
        xyz, rng, [a for a in config.flip_axes if a < xyz.shape[1] and a != config.upright_axis]
    )
    return A.random_translation(xyz, rng, config.translation)


def augment_color(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rgb = A.chromatic_auto_contrast(rgb, rng)
    rgb = A.chromatic_translation(rgb, rng)
    rgb = A.chromatic_jitter(rgb, rng)
    return A.hue_saturation(rgb, rng, hue_max=0.1, saturation_max=0.15)


def prepare_sample(
    xyz: np.ndarray,
    rgb: np.ndarray | None,
    labels: np.ndarray | None,
    config: PipelineConfig,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
) -> dict:
    """Augment (when `train`) and voxelize one scene or temporal window (xyz [N, 3] or [N, 4])."""
    if train and rng is None:
        raise StsegInputError("training pipelines need a numpy Generator (rng)")
    xyz = np.asarray(xyz, dtype=np.float64)
    if train and rng is not None:
        keep = A.random_dropout(len(xyz), rng, config.dropout)
        xyz = xyz[keep]
        rgb = None if rgb is None else rgb[keep]
        labels = None if labels is None else labels[keep]
        xyz = augment_geometry(xyz, rng, config)
    if rgb is None and config.fill_color is None:
        raise StsegInputError(
            "the model expects 3 colour channels but the scene has none; set fill_color in the "
            "pipeline config (--fill-color) to use a constant colour"
        )
    colour = (
        np.full((len(xyz), 3), config.fill_color, np.float32)
        if rgb is None
        else np.asarray(rgb, np.float32)
    )
    vox = voxelize(
        xyz,
        config.voxel_size,
        labels=labels,
        clip_bounds=config.clip_bounds,
        label_mode=config.label_mode,
    )
    features = colour[vox.index]
    if train and rng is not None and config.chromatic and rgb is not None:
        features = augment_color(features, rng)
    features = (features - 0.5).astype(np.float32)
    if not np.isfinite(features).all():
        raise StsegInputError("non-finite features after augmentation")
    sample = {"coords": vox.coords, "features": features, "inverse": vox.inverse, "index": vox.index,
              "n_points": len(xyz)}  # fmt: skip
    if vox.labels is not None:
        sample["labels"] = vox.labels
    return sample


def prepare_cloud(
    cloud: PointCloud,
    config: PipelineConfig,
    *,
    train: bool,
    rng: np.random.Generator | None = None,
) -> dict:
    """`prepare_sample` for a `PointCloud`; also carries `instances` per voxel when present."""
    sample = prepare_sample(cloud.xyz, cloud.rgb, cloud.labels, config, train=train, rng=rng)
    if cloud.instances is not None and not train:
        sample["instances"] = cloud.instances[sample["index"]]
    return sample
