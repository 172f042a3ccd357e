"""`collate`: voxelized samples -> one batch with the batch index as the first coordinate."""

from __future__ import annotations

import logging

import numpy as np

from stseg_data.augment import random_voxel_shift
from stseg_data.errors import StsegInputError

log = logging.getLogger(__name__)


def collate(
    samples: list[dict],
    *,
    max_points: int | None = None,
    rng: np.random.Generator | None = None,
    max_shift: int = 0,
) -> dict:
    """Concatenate samples (see `pipelines`) into a batch of numpy arrays:

    coords   int32 [M, 1 + D]  batch index first
    features float32 [M, C]
    labels   int64 [M]          (when every sample has labels)
    inverse  int64 [N_total]    per-point voxel rows, offset into the batch's voxels (-1 kept)
    voxel_offsets, point_offsets int64 [B + 1]   sample boundaries
    names    list               sample names when given (key 'name')
    dropped  int                samples left out by the `max_points` voxel cap (logged)

    With `max_points`, samples are taken in order while the voxel total stays within the cap
    (the first is always kept). With `rng` and `max_shift`, one random integer shift is added
    to the spatial voxel coordinates of the whole batch.
    """
    if not samples:
        raise StsegInputError("collate: empty list of samples")
    kept: list[dict] = []
    total = 0
    for sample in samples:
        m = len(sample["coords"])
        if kept and max_points is not None and total + m > max_points:
            break
        kept.append(sample)
        total += m
    dropped = len(samples) - len(kept)
    if dropped:
        log.warning(
            "collate: dropped %d of %d samples to stay within %d voxels",
            dropped,
            len(samples),
            max_points,
        )
    coords = []
    voxel_offsets, point_offsets = [0], [0]
    inverses = []
    for b, sample in enumerate(kept):
        c = sample["coords"]
        coords.append(np.column_stack([np.full(len(c), b, dtype=np.int32), c.astype(np.int32)]))
        inv = sample["inverse"]
        inverses.append(np.where(inv >= 0, inv + voxel_offsets[-1], -1))
        voxel_offsets.append(voxel_offsets[-1] + len(c))
        point_offsets.append(point_offsets[-1] + len(inv))
    batch: dict = {
        "coords": np.concatenate(coords),
        "features": np.concatenate([s["features"] for s in kept]).astype(np.float32),
        "inverse": np.concatenate(inverses).astype(np.int64),
        "voxel_offsets": np.asarray(voxel_offsets, dtype=np.int64),
        "point_offsets": np.asarray(point_offsets, dtype=np.int64),
        "dropped": dropped,
    }
    if rng is not None and max_shift > 0:
        batch["coords"][:, 1:] = random_voxel_shift(batch["coords"][:, 1:], rng, max_shift)
    if all("labels" in s for s in kept):
        batch["labels"] = np.concatenate([s["labels"] for s in kept]).astype(np.int64)
    if all("name" in s for s in kept):
        batch["names"] = [s["name"] for s in kept]
    return batch
