"""Class colours for the coloured prediction PLY (no plotting library needed).

ScanNet's 20 benchmark classes use the colours of the ScanNet benchmark's visualisation; any other
class list gets well-separated hues from the golden-ratio sequence, stable for a given class count.
"""

from __future__ import annotations

import colorsys

import numpy as np

from stseg_data.colors import SCANNET20_COLORS


def palette(num_classes: int, dataset: str | None = None) -> np.ndarray:
    """uint8 [num_classes, 3] colours, one per training class id."""
    if dataset == "scannet" and num_classes == len(SCANNET20_COLORS):
        return SCANNET20_COLORS.copy()
    golden = 0.618033988749895
    colors = [
        colorsys.hsv_to_rgb((i * golden) % 1.0, 0.65, 0.95 if i % 2 == 0 else 0.75)
        for i in range(num_classes)
    ]
    return np.round(np.array(colors, dtype=np.float64).reshape(-1, 3) * 255).astype(np.uint8)


def colorize(labels: np.ndarray, num_classes: int, dataset: str | None = None) -> np.ndarray:
    """uint8 [N, 3] colours for training-id labels [N] in [0, num_classes)."""
    return palette(num_classes, dataset)[labels]
