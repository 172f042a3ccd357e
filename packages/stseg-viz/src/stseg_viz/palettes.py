"""Named label palettes: the official ScanNet/NYU40 colours, S3DIS and Synthia palettes.

A `Palette` maps a training label id `k` (0..K-1) to `colors[k]` (uint8 RGB) and a class name.
Label ids that are negative or equal to the ignore label (255) are "ignored" and drawn with
`IGNORE_COLOR`; any other id >= K is an error (see `stseg_viz.colorize`).

Sources:
- NYU40: ScanNet's `create_color_palette()` (index 0 = unannotated, 1..40 = NYU40 ids). The
  `nyu40` palette takes raw NYU40 ids as ScanNet's `*.labels.ply` files store them: 0..40.
- ScanNet 20: the NYU40 colour of each class's NYU40 id (`SCANNET_NYU40_IDS`), as ScanNet's own
  benchmark scripts colour the 20 evaluated classes.
- Synthia: the Cityscapes colour convention that SYNTHIA's label images follow.
- S3DIS has no official palette; ours reuses the ScanNet colour of the same class where one exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stseg_data.colors import NYU40_COLORS, SCANNET20_COLORS
from stseg_data.labels import (
    IGNORE_LABEL,
    NYU40_CLASS_NAMES,
    S3DIS_CLASS_NAMES,
    SCANNET_CLASS_NAMES,
    SYNTHIA_CLASS_NAMES,
)
from stseg_viz.errors import PaletteError

__all__ = [
    "IGNORE_COLOR",
    "IGNORE_LABEL",
    "NYU40_COLORS",
    "PALETTE_NAMES",
    "S3DIS_COLORS",
    "SCANNET20_COLORS",
    "SYNTHIA_COLORS",
    "Palette",
    "get_palette",
]

#: Colour of ignored / unannotated points in label colourings (ScanNet draws them black).
IGNORE_COLOR = (0, 0, 0)

#: S3DIS 13 classes (ceiling, floor, wall, beam, column, window, door, table, chair, sofa,
#: bookcase, board, clutter).
S3DIS_COLORS = np.array(
    [
        (78, 71, 183),  # ceiling (ScanNet ceiling)
        (152, 223, 138),  # floor
        (174, 199, 232),  # wall
        (255, 187, 120),  # beam
        (188, 128, 52),  # column
        (197, 176, 213),  # window
        (214, 39, 40),  # door
        (255, 152, 150),  # table
        (188, 189, 34),  # chair
        (140, 86, 75),  # sofa
        (148, 103, 189),  # bookcase (ScanNet bookshelf)
        (178, 127, 135),  # board (ScanNet whiteboard)
        (100, 85, 144),  # clutter (ScanNet otherprop)
    ],
    dtype=np.uint8,
)

#: Synthia4D 12 classes in MinkowskiEngine's order, Cityscapes colours.
SYNTHIA_COLORS = np.array(
    [
        (70, 70, 70),  # building
        (128, 64, 128),  # road
        (244, 35, 232),  # sidewalk
        (190, 153, 153),  # fence
        (107, 142, 35),  # vegetation
        (153, 153, 153),  # pole
        (0, 0, 142),  # car
        (220, 220, 0),  # traffic sign
        (220, 20, 60),  # pedestrian
        (119, 11, 32),  # bicycle
        (157, 234, 50),  # lane marking
        (250, 170, 30),  # traffic light
    ],
    dtype=np.uint8,
)


@dataclass(frozen=True)
class Palette:
    """Colours and names of a label set: `colors` uint8 [K, 3], `class_names` K strings."""

    name: str
    colors: np.ndarray
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.colors.shape != (len(self.class_names), 3) or self.colors.dtype != np.uint8:
            raise ValueError(
                f"palette {self.name}: colours must be uint8 [{len(self.class_names)}, 3]"
            )

    def __len__(self) -> int:
        return len(self.class_names)


def _palettes() -> dict[str, Palette]:
    return {
        "scannet20": Palette("scannet20", SCANNET20_COLORS, tuple(SCANNET_CLASS_NAMES)),
        "nyu40": Palette("nyu40", NYU40_COLORS, ("unannotated", *NYU40_CLASS_NAMES)),
        "s3dis": Palette("s3dis", S3DIS_COLORS, tuple(S3DIS_CLASS_NAMES)),
        "synthia": Palette("synthia", SYNTHIA_COLORS, tuple(SYNTHIA_CLASS_NAMES)),
    }


#: Names accepted by `get_palette` and the CLI's `--palette`.
PALETTE_NAMES = ("scannet20", "nyu40", "s3dis", "synthia")


def get_palette(name: str) -> Palette:
    """The palette called `name` (one of `PALETTE_NAMES`); `PaletteError` otherwise."""
    palettes = _palettes()
    if name not in palettes:
        raise PaletteError(f"unknown palette {name!r}; choose one of {', '.join(PALETTE_NAMES)}")
    return palettes[name]
