"""Synthetic Synthia4D sequences: streets with moving cars, pedestrians and cyclists.

    OUT/<SEQ>/Stereo_Left/<frame:06d>.ply   x y z (centimetres, y up), r g b (uchar), label (raw 0..15)
    OUT/train_raw.txt, OUT/val_raw.txt      frame paths, one per line (the original split files)

The static street (road, lane markings, raised sidewalks, buildings, fences, trees, poles, signs,
traffic lights) is built once per sequence; dynamic objects move between frames, and each frame
keeps the points within 30 m of a camera that advances 1 m per frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stseg_data.atomic import atomic_write
from stseg_data.ply import write_ply
from stseg_data.synth_mesh import MeshBuilder

# raw Synthia ids
BUILDING, ROAD, SIDEWALK, FENCE, VEGETATION, POLE, CAR = 2, 3, 4, 5, 6, 7, 8
SIGN, PEDESTRIAN, BICYCLE, LANE, LIGHT = 9, 10, 11, 12, 15
COLORS = {BUILDING: (0.6, 0.5, 0.45), ROAD: (0.3, 0.3, 0.32), SIDEWALK: (0.55, 0.55, 0.5),
          FENCE: (0.45, 0.35, 0.25), VEGETATION: (0.25, 0.45, 0.2), POLE: (0.5, 0.5, 0.5),
          CAR: (0.5, 0.2, 0.2), SIGN: (0.7, 0.7, 0.2), PEDESTRIAN: (0.4, 0.3, 0.5),
          BICYCLE: (0.2, 0.4, 0.6), LANE: (0.9, 0.9, 0.85), LIGHT: (0.2, 0.2, 0.2)}  # fmt: skip
LENGTH, ROAD_HALF, WALK = 120.0, 4.0, 3.0


def _tint(rng, label):
    return np.clip(np.array(COLORS[label]) + rng.normal(0, 0.08, 3), 0, 1)


def _static(rng: np.random.Generator, spacing: float) -> MeshBuilder:
    """Street along +x (metres, z up while building; converted to y-up centimetres on write)."""
    b = MeshBuilder(rng, spacing=spacing, noise=0.02, hole_rate=0.2)
    b.rect((0, -ROAD_HALF, 0), (LENGTH, 0, 0), (0, 2 * ROAD_HALF, 0), ROAD, 0, _tint(rng, ROAD))
    for x in np.arange(0, LENGTH, 6.0):
        b.rect((x, -0.08, 0.01), (3.0, 0, 0), (0, 0.16, 0), LANE, 0, _tint(rng, LANE), holes=False)
    for sign in (-1, 1):
        y0 = ROAD_HALF if sign > 0 else -ROAD_HALF - WALK
        b.box((0, y0, 0), (LENGTH, y0 + WALK, 0.15), SIDEWALK, 0, _tint(rng, SIDEWALK), holes=False)
        fence_y = y0 + WALK if sign > 0 else y0
        x = 0.0
        while x < LENGTH:  # buildings and fenced gaps alternate
            w = rng.uniform(8, 20)
            if rng.random() < 0.7:
                depth, h = rng.uniform(4, 8), rng.uniform(4, 9)
                yb = fence_y if sign > 0 else fence_y - depth
                b.box((x, yb, 0), (x + w, yb + depth, h), BUILDING, 0, _tint(rng, BUILDING))
            else:
                b.rect((x, fence_y, 0), (w, 0, 0), (0, 0, 1.2), FENCE, 0, _tint(rng, FENCE))
            x += w + rng.uniform(0, 3)
        for x in np.arange(rng.uniform(2, 8), LENGTH, rng.uniform(8, 14)):
            y = sign * (ROAD_HALF + 0.6)
            kind = rng.random()
            if kind < 0.4:  # tree
                b.cylinder(
                    (x, y), 0.15, 0.15, 2.5, VEGETATION, 0, _tint(rng, VEGETATION), cap=False
                )
                b.box(
                    (x - 1.2, y - 1.2, 2.5),
                    (x + 1.2, y + 1.2, 4.5),
                    VEGETATION,
                    0,
                    _tint(rng, VEGETATION),
                )
            elif kind < 0.6:
                b.cylinder((x, y), 0.08, 0.15, 6.0, POLE, 0, _tint(rng, POLE), cap=False)
            elif kind < 0.8:
                b.cylinder((x, y), 0.05, 0.15, 2.2, POLE, 0, _tint(rng, POLE), cap=False)
                b.box(
                    (x - 0.02, y - 0.4, 2.2),
                    (x + 0.02, y + 0.4, 2.9),
                    SIGN,
                    0,
                    _tint(rng, SIGN),
                    holes=False,
                )
            else:
                b.cylinder((x, y), 0.08, 0.15, 3.0, POLE, 0, _tint(rng, POLE), cap=False)
                b.box(
                    (x - 0.2, y - 0.2, 3.0),
                    (x + 0.2, y + 0.2, 4.0),
                    LIGHT,
                    0,
                    _tint(rng, LIGHT),
                    holes=False,
                )
    return b


def _movers(rng: np.random.Generator) -> list[dict]:
    movers = []
    for k in range(rng.integers(4, 8)):
        lane = rng.choice([-2.0, 2.0])
        movers.append({"label": CAR, "x": rng.uniform(0, LENGTH - 5), "y": lane, "v": rng.uniform(0.5, 2.0) * np.sign(lane),
                       "size": (rng.uniform(3.8, 4.8), rng.uniform(1.7, 1.9), rng.uniform(1.4, 1.6)), "inst": k + 1})  # fmt: skip
    for k in range(rng.integers(4, 10)):
        side = rng.choice([-1.0, 1.0])
        label = PEDESTRIAN if rng.random() < 0.75 else BICYCLE
        movers.append({"label": label, "x": rng.uniform(0, LENGTH), "y": side * (ROAD_HALF + rng.uniform(0.8, 2.6)),
                       "v": rng.uniform(0.1, 0.5) * (3 if label == BICYCLE else 1) * rng.choice([-1, 1]),
                       "size": (0.5, 0.5, 1.75) if label == PEDESTRIAN else (1.7, 0.4, 1.1), "inst": 100 + k})  # fmt: skip
    return movers


def _dynamic(rng, spacing, movers, frame) -> MeshBuilder:
    b = MeshBuilder(rng, spacing=spacing, noise=0.02, hole_rate=0.0)
    for m in movers:
        x = (m["x"] + m["v"] * frame) % LENGTH
        sx, sy, sz = m["size"]
        lo = 0.15 if m["label"] != CAR else 0.0
        col = (
            _tint(rng, m["label"])
            if m["label"] != CAR
            else np.clip(rng.uniform(0.1, 0.9, 3) * 0 + COLORS[CAR], 0, 1)
        )
        if m["label"] == CAR:
            b.box(
                (x, m["y"] - sy / 2, 0.3),
                (x + sx, m["y"] + sy / 2, 0.3 + sz * 0.55),
                CAR,
                m["inst"],
                col,
            )
            b.box((x + sx * 0.25, m["y"] - sy / 2 + 0.1, 0.3 + sz * 0.55), (x + sx * 0.8, m["y"] + sy / 2 - 0.1, 0.3 + sz),
                  CAR, m["inst"], col * 0.7)  # fmt: skip
        elif m["label"] == PEDESTRIAN:
            b.cylinder((x, m["y"]), 0.2, lo, lo + sz, PEDESTRIAN, m["inst"], col)
        else:
            b.box(
                (x, m["y"] - 0.05, lo + 0.3),
                (x + sx, m["y"] + 0.05, lo + sz),
                BICYCLE,
                m["inst"],
                col,
            )
    return b


def write_synthia_sequence(
    root: Path, index: int, seed: int, frames: int = 8, spacing: float = 0.15
) -> list[str]:
    rng = np.random.default_rng([seed, index, 3])
    static = _static(rng, spacing).arrays()
    movers = _movers(rng)
    seq = f"SYNTHIA-SEQS-{index:02d}-SUMMER"
    paths = []
    for f in range(frames):
        dynamic = _dynamic(rng, spacing, movers, f).arrays()
        xyz = np.concatenate([static["xyz"], dynamic["xyz"]]).astype(np.float64)
        rgb = np.concatenate([static["rgb"], dynamic["rgb"]])
        label = np.concatenate([static["label"], dynamic["label"]])
        camera = np.array([20.0 + f * 1.0, 0.0, 1.5])
        keep = np.linalg.norm(xyz[:, :2] - camera[:2], axis=1) < 30.0
        keep &= rng.random(len(keep)) < 0.6  # sensor dropout
        local = xyz[keep] - camera
        # y up, centimetres: (x forward, z up, y left) -> (x, z, -y) * 100
        cm = np.stack([local[:, 0], local[:, 2], -local[:, 1]], 1) * 100.0
        rel = f"{seq}/Stereo_Left/{f:06d}.ply"
        write_ply(root / rel, cm.astype(np.float32), rgb[keep], {"label": label[keep].astype(np.uint8)},
                  color_names=("r", "g", "b"))  # fmt: skip
        paths.append(rel)
    return paths


def write_synthia_splits(root: Path, sequences: list[list[str]]) -> None:
    val = [s for i, s in enumerate(sequences) if i % 5 == 4] or sequences[-1:]
    train = [s for s in sequences if s not in val] or sequences
    for split, items in (("train", train), ("val", val)):
        with atomic_write(root / f"{split}_raw.txt", "w") as handle:
            handle.write("".join(f"{p}\n" for seq in items for p in seq))
