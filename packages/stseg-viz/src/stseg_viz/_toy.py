"""A tiny synthetic room (floor, two walls, boxes) for stseg-viz's tests, benchmark and examples.

Private: the project's real synthetic data lives in `stseg_data.synth`; this one only needs to
look like a scene and to be fast and deterministic.
"""

from __future__ import annotations

import numpy as np

from stseg_data.pointcloud import PointCloud


def toy_room(n: int, seed: int = 0, boxes: int = 6) -> PointCloud:
    """n points: floor (label 1), two walls (label 0) and `boxes` boxes (labels 2.., instances 1..)."""
    rng = np.random.default_rng(seed)
    n_floor, n_wall = n // 4, n // 4
    floor = np.c_[rng.uniform(0, 6, n_floor), rng.uniform(0, 4, n_floor), np.zeros(n_floor)]
    along = rng.uniform(0, 1, n_wall)
    height = rng.uniform(0, 2.5, n_wall)
    on_x = (rng.integers(0, 2, n_wall) == 0)[:, None]
    wall = np.where(
        on_x, np.c_[along * 6, np.zeros(n_wall), height], np.c_[np.zeros(n_wall), along * 4, height]
    )
    parts = [(floor, 1, 0), (wall, 0, 0)]
    rest = n - n_floor - n_wall
    sizes = np.full(boxes, rest // boxes)
    sizes[-1] += rest - sizes.sum()
    for i, m in enumerate(sizes):
        corner = rng.uniform([0.5, 0.5, 0.0], [5.0, 3.0, 0.3])
        extent = rng.uniform(0.3, 1.0, 3)
        parts.append((corner + rng.uniform(0, 1, (m, 3)) * extent, 2 + i, i + 1))
    xyz = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
    instances = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
    rgb = np.clip(0.5 + 0.3 * np.sin(xyz * 3) + rng.normal(0, 0.05, xyz.shape), 0, 1)
    return PointCloud(xyz=xyz, rgb=rgb.astype(np.float32), labels=labels, instances=instances)
