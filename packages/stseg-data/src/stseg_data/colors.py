"""ScanNet's class colours, shared by every package that draws labels (stseg-models' coloured
prediction PLY, stseg-viz's palettes), so there is one copy of the table.

Source: ScanNet's `create_color_palette()` (index 0 = unannotated, 1..40 = NYU40 ids); the 20
benchmark classes take the colour of their NYU40 id, as ScanNet's own scripts colour them.
"""

from __future__ import annotations

import numpy as np

from stseg_data.labels import SCANNET_NYU40_IDS

__all__ = ["NYU40_COLORS", "SCANNET20_COLORS"]

#: ScanNet's NYU40 palette, uint8 [41, 3]; row 0 is "unannotated", row i is NYU40 id i.
NYU40_COLORS = np.array(
    [
        (0, 0, 0),
        (174, 199, 232),  # 1 wall
        (152, 223, 138),  # 2 floor
        (31, 119, 180),  # 3 cabinet
        (255, 187, 120),  # 4 bed
        (188, 189, 34),  # 5 chair
        (140, 86, 75),  # 6 sofa
        (255, 152, 150),  # 7 table
        (214, 39, 40),  # 8 door
        (197, 176, 213),  # 9 window
        (148, 103, 189),  # 10 bookshelf
        (196, 156, 148),  # 11 picture
        (23, 190, 207),  # 12 counter
        (178, 76, 76),  # 13 blinds
        (247, 182, 210),  # 14 desk
        (66, 188, 102),  # 15 shelves
        (219, 219, 141),  # 16 curtain
        (140, 57, 197),  # 17 dresser
        (202, 185, 52),  # 18 pillow
        (51, 176, 203),  # 19 mirror
        (200, 54, 131),  # 20 floor mat
        (92, 193, 61),  # 21 clothes
        (78, 71, 183),  # 22 ceiling
        (172, 114, 82),  # 23 books
        (255, 127, 14),  # 24 refrigerator
        (91, 163, 138),  # 25 television
        (153, 98, 156),  # 26 paper
        (140, 153, 101),  # 27 towel
        (158, 218, 229),  # 28 shower curtain
        (100, 125, 154),  # 29 box
        (178, 127, 135),  # 30 whiteboard
        (120, 185, 128),  # 31 person
        (146, 111, 194),  # 32 night stand
        (44, 160, 44),  # 33 toilet
        (112, 128, 144),  # 34 sink
        (96, 207, 209),  # 35 lamp
        (227, 119, 194),  # 36 bathtub
        (213, 92, 176),  # 37 bag
        (94, 106, 211),  # 38 other structure
        (82, 84, 163),  # 39 other furniture
        (100, 85, 144),  # 40 other prop
    ],
    dtype=np.uint8,
)


#: ScanNet 20-class colours: the NYU40 colour of each evaluated class, uint8 [20, 3].
SCANNET20_COLORS = NYU40_COLORS[np.asarray(SCANNET_NYU40_IDS, dtype=np.int64)]
