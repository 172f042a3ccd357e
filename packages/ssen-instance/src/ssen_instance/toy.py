"""Small procedural indoor scenes and simulated embeddings, for tests and benchmarks only.

`toy_room` samples points on the floor, the walls and the five visible faces of box-shaped
objects (each an instance of one of the 18 instance classes). `simulated_embeddings` gives what a
trained SSEN embedding network would output, with controllable noise: one random well-separated
centre per instance, Gaussian spread, and a fraction of voxels pulled toward a wrong instance.
The ScanNet-format synthetic dataset on disk is stseg-data's (`stseg_data.synth`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stseg_data.labels import SCANNET_INSTANCE_CLASS_IDS

WALL, FLOOR = 0, 1


@dataclass
class ToyScene:
    """xyz float64 [N,3] metres, rgb float32 [N,3] in [0,1], semantic int64 [N] (training ids),
    instance int64 [N] (0 = none, else 1..K)."""

    xyz: np.ndarray
    rgb: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray


def _plane(rng, origin, u, v, density):
    area = np.linalg.norm(u) * np.linalg.norm(v)
    n = max(1, int(area * density))
    a, b = rng.random((2, n, 1))
    return origin + a * u + b * v


def toy_room(
    num_objects: int = 8, density: float = 3000.0, size: float = 6.0, seed: int = 0
) -> ToyScene:
    """A size x size m room with `num_objects` boxes; `density` points per square metre."""
    rng = np.random.default_rng(seed)
    parts, sem, inst, colours = [], [], [], []

    def add(points, label, instance, colour):
        parts.append(points)
        sem.append(np.full(len(points), label))
        inst.append(np.full(len(points), instance))
        colours.append(np.clip(colour + 0.05 * rng.standard_normal((len(points), 3)), 0, 1))

    o, x, y, z = np.zeros(3), np.array([size, 0, 0]), np.array([0, size, 0]), np.array([0, 0, 2.5])
    add(_plane(rng, o, x, y, density), FLOOR, 0, np.array([0.5, 0.4, 0.3]))
    for origin, u in ((o, x), (o, y), (y, x), (x, y)):
        add(_plane(rng, origin, u, z, density), WALL, 0, np.array([0.8, 0.8, 0.75]))
    slots = max(2, int(np.ceil(np.sqrt(num_objects))))
    cell = (size - 0.4) / slots
    for k, slot in enumerate(rng.permutation(slots * slots)[:num_objects], start=1):
        w, d = rng.uniform(0.35, 0.85, 2) * cell
        h = rng.uniform(0.4, 1.5)
        base = np.array(
            [
                0.2 + (slot % slots + 0.5) * cell - w / 2,
                0.2 + (slot // slots + 0.5) * cell - d / 2,
                0,
            ]
        )
        label = int(rng.choice(SCANNET_INSTANCE_CLASS_IDS))
        colour = rng.random(3)
        ex, ey, ez = np.array([w, 0, 0]), np.array([0, d, 0]), np.array([0, 0, h])
        faces = [
            (base + ez, ex, ey),
            (base, ex, ez),
            (base + ey, ex, ez),
            (base, ey, ez),
            (base + ex, ey, ez),
        ]
        add(np.concatenate([_plane(rng, *f, density) for f in faces]), label, k, colour)
    return ToyScene(
        np.concatenate(parts),
        np.concatenate(colours).astype(np.float32),
        np.concatenate(sem).astype(np.int64),
        np.concatenate(inst).astype(np.int64),
    )


def simulated_embeddings(
    instance: np.ndarray,
    dim: int = 8,
    *,
    spread: float = 0.05,
    confusion: float = 0.02,
    seed: int = 0,
) -> np.ndarray:
    """float32 [M, dim] embeddings for voxels with instance ids [M] (0 = background).

    Instance centres are random points at least 1.0 apart (the loss's push margin); each voxel is
    its centre plus N(0, spread^2), and a `confusion` fraction sits halfway to another centre.
    """
    rng = np.random.default_rng(seed)
    ids = np.unique(instance)
    centres = rng.standard_normal((ids.size, dim))
    centres *= 1.5 * np.sqrt(ids.size) / np.linalg.norm(centres, axis=1, keepdims=True)
    row = np.searchsorted(ids, instance)
    emb = centres[row] + spread * rng.standard_normal((instance.size, dim))
    confused = rng.random(instance.size) < confusion
    other = rng.integers(0, ids.size, int(confused.sum()))
    emb[confused] = 0.5 * (emb[confused] + centres[other])
    return emb.astype(np.float32)


def noisy_semantic(
    semantic: np.ndarray, instance: np.ndarray, flip: float = 0.02, seed: int = 0
) -> np.ndarray:
    """Semantic predictions [M]: the truth with a `flip` fraction of voxels set to a random class."""
    rng = np.random.default_rng(seed)
    out = np.asarray(semantic, dtype=np.int64).copy()
    flipped = rng.random(out.size) < flip
    out[flipped] = rng.integers(0, 20, int(flipped.sum()))
    return out


def write_toy_scenes(root: Path, count: int) -> Path:
    """`count` toy rooms (~2,800 points each) as SSEN scene files `scene000K_00_semantic_segment.pt`
    under `root` (ground-truth semantics as the predicted column); returns `root`."""
    from ssen_instance.scenes import SsenScene, instance_ids, write_ssen_scene

    for seed in range(count):
        room = toy_room(num_objects=3, density=60.0, size=3.0, seed=seed)
        scene = SsenScene(room.xyz, room.rgb, room.semantic,
                          instance_ids(room.semantic, room.instance), room.semantic,
                          f"scene{seed:04d}_00")  # fmt: skip
        write_ssen_scene(root / f"scene{seed:04d}_00_semantic_segment.pt", scene)
    return root
