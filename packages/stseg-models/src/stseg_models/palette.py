"""Class colours for the coloured prediction PLY (no plotting library needed).

ScanNet's 20 benchmark classes use the colours of the ScanNet benchmark's visualisation; any other
class list gets well-separated hues from the golden-ratio sequence, stable for a given class count.
"""

from __future__ import annotations

import colorsys

import numpy as np

SCANNET20_COLORS: tuple[tuple[int, int, int], ...] = (
    (174, 199, 232), (152, 223, 138), (31, 119, 180), (255, 187, 120), (188, 189, 34),
    (140, 86, 75), (255, 152, 150), (214, 39, 40), (197, 176, 213), (148, 103, 189),
    (196, 156, 148), (23, 190, 207), (247, 182, 210), (219, 219, 141), (255, 127, 14),
    (158, 218, 229), (44, 160, 44), (112, 128, 144), (227, 119, 194), (82, 84, 163),
)  # fmt: skip


def palette(num_classes: int, dataset: str | None = None) -> np.ndarray:
    """uint8 [num_classes, 3] colours, one per training class id."""
    if dataset == "scannet" and num_classes == len(SCANNET20_COLORS):
        return np.array(SCANNET20_COLORS, dtype=np.uint8)
    golden = 0.618033988749895
    colors = [
        colorsys.hsv_to_rgb((i * golden) % 1.0, 0.65, 0.95 if i % 2 == 0 else 0.75)
        for i in range(num_classes)
    ]
    return np.round(np.array(colors, dtype=np.float64).reshape(-1, 3) * 255).astype(np.uint8)


def colorize(labels: np.ndarray, num_classes: int, dataset: str | None = None) -> np.ndarray:
    """uint8 [N, 3] colours for training-id labels [N] in [0, num_classes)."""
    return palette(num_classes, dataset)[labels]
