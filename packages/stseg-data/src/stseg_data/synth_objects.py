"""Furniture-like objects of the ScanNet classes, built in a local frame.

Each builder draws its own dimensions from the generator and adds surfaces to a `MeshBuilder`
whose pose is already set. Wall objects stand with their back on the local x axis (y = 0) and
extend along +x (width) and +y (depth, into the room); free objects are centred on the origin.
Shapes, sizes and heights are distinctive per class; colours come from overlapping palettes, so
a network has to use geometry and context. Labels are NYU40 ids.
"""

from __future__ import annotations

import numpy as np

from stseg_data.synth_mesh import MeshBuilder

WHITE, CREAM, BEIGE = (0.92, 0.92, 0.9), (0.95, 0.9, 0.8), (0.85, 0.78, 0.65)
LGREY, GREY, DGREY, BLACK = (0.7, 0.7, 0.7), (0.5, 0.5, 0.52), (0.3, 0.3, 0.32), (0.12, 0.12, 0.12)
WOOD, LWOOD, DWOOD = (0.55, 0.38, 0.22), (0.75, 0.6, 0.4), (0.35, 0.22, 0.12)
PBLUE, BLUE, RED, GREEN = (0.7, 0.8, 0.9), (0.2, 0.3, 0.6), (0.6, 0.15, 0.15), (0.3, 0.5, 0.3)

PALETTES: dict[str, list] = {
    "wall": [WHITE, BEIGE, LGREY, PBLUE, CREAM], "floor": [WOOD, LWOOD, GREY, BEIGE, DGREY],
    "ceiling": [WHITE, CREAM], "cabinet": [WOOD, WHITE, LWOOD, GREY], "bed": [WHITE, BLUE, CREAM, RED],
    "chair": [BLACK, WOOD, GREY, RED, BLUE], "sofa": [GREY, BLUE, BEIGE, RED, GREEN],
    "table": [WOOD, LWOOD, WHITE, DWOOD], "door": [WOOD, WHITE, DWOOD, LGREY],
    "window": [PBLUE, WHITE, LGREY], "bookshelf": [WOOD, WHITE, DWOOD, BLACK],
    "counter": [WHITE, GREY, BEIGE, DGREY], "desk": [WOOD, WHITE, BLACK, LWOOD],
    "curtain": [BEIGE, RED, BLUE, GREEN, WHITE, CREAM], "refrigerator": [WHITE, LGREY, GREY, BLACK],
    "shower curtain": [WHITE, PBLUE, CREAM, GREEN], "toilet": [WHITE, CREAM], "sink": [WHITE, LGREY],
    "bathtub": [WHITE, CREAM], "otherfurniture": [WOOD, BLACK, GREY, WHITE, RED],
}  # fmt: skip
NYU40 = {"wall": 1, "floor": 2, "cabinet": 3, "bed": 4, "chair": 5, "sofa": 6, "table": 7,
         "door": 8, "window": 9, "bookshelf": 10, "picture": 11, "counter": 12, "desk": 14,
         "curtain": 16, "refrigerator": 24, "shower curtain": 28, "box": 29, "toilet": 33,
         "sink": 34, "bathtub": 36, "otherfurniture": 39, "ceiling": 22, "otherprop": 40}  # fmt: skip


def color(rng: np.random.Generator, name: str) -> np.ndarray:
    """A class colour: a palette entry with a random tint (palettes overlap between classes)."""
    if name in PALETTES:
        base = np.array(PALETTES[name][rng.integers(len(PALETTES[name]))])
        return np.clip(base + rng.normal(0, 0.05, 3), 0, 1)
    return rng.uniform(0.1, 0.9, 3)  # pictures, clutter: anything


def _legs(b: MeshBuilder, x0, y0, x1, y1, z, label, inst, col, t=0.045) -> None:
    for x, y in ((x0, y0), (x1 - t, y0), (x0, y1 - t), (x1 - t, y1 - t)):
        b.box((x, y, 0), (x + t, y + t, z), label, inst, col, top=False, holes=False)


def cabinet(b, rng, inst, w=None, d=None, h=None) -> tuple[float, float]:
    w, d, h = w or rng.uniform(0.6, 1.5), d or rng.uniform(0.45, 0.6), h or rng.uniform(0.6, 0.95)
    col = color(rng, "cabinet")
    b.box((0, 0, 0), (w, d, h), NYU40["cabinet"], inst, col)
    for k in range(max(1, int(w / 0.5))):  # door handles: short bars on the front
        x = (k + 0.5) * w / max(1, int(w / 0.5))
        b.box(
            (x - 0.06, d, h - 0.15),
            (x + 0.06, d + 0.025, h - 0.12),
            NYU40["cabinet"],
            inst,
            DGREY,
            holes=False,
        )
    return w, d


def bed(b, rng, inst) -> tuple[float, float]:
    w, d, h = rng.uniform(1.4, 1.8), rng.uniform(1.9, 2.1), rng.uniform(0.45, 0.6)
    col, lab = color(rng, "bed"), NYU40["bed"]
    b.box((0, 0.06, 0), (w, d, h), lab, inst, col)
    b.box((0, 0, 0), (w, 0.06, rng.uniform(0.9, 1.1)), lab, inst, color(rng, "table"))  # headboard
    for x in (0.1, w / 2 + 0.05):  # pillows
        b.box((x, 0.15, h), (x + w / 2 - 0.15, 0.5, h + 0.12), lab, inst, WHITE, holes=False)
    return w, d


def chair(b, rng, inst) -> tuple[float, float]:
    s, z = rng.uniform(0.42, 0.5), rng.uniform(0.42, 0.48)
    col, lab = color(rng, "chair"), NYU40["chair"]
    x0 = -s / 2
    _legs(b, x0, x0, -x0, -x0, z - 0.05, lab, inst, col)
    b.box((x0, x0, z - 0.05), (-x0, -x0, z), lab, inst, col, holes=False)
    b.box((x0, x0, z), (-x0, x0 + 0.05, z + rng.uniform(0.38, 0.48)), lab, inst, col, holes=False)
    return s, s


def sofa(b, rng, inst) -> tuple[float, float]:
    w, d = rng.uniform(1.6, 2.4), rng.uniform(0.85, 0.95)
    col, lab = color(rng, "sofa"), NYU40["sofa"]
    b.box((0.18, 0.2, 0), (w - 0.18, d, 0.42), lab, inst, col)  # seat
    b.box((0, 0, 0), (w, 0.2, 0.8), lab, inst, col)  # back
    for x in (0, w - 0.18):  # arms
        b.box((x, 0.2, 0), (x + 0.18, d, 0.62), lab, inst, col)
    return w, d


def table(b, rng, inst) -> tuple[float, float]:
    w, d, z = rng.uniform(1.0, 1.8), rng.uniform(0.7, 1.0), rng.uniform(0.72, 0.78)
    col, lab = color(rng, "table"), NYU40["table"]
    _legs(
        b,
        -w / 2 + 0.05,
        -d / 2 + 0.05,
        w / 2 - 0.05,
        d / 2 - 0.05,
        z - 0.04,
        lab,
        inst,
        col,
        t=0.06,
    )
    b.box((-w / 2, -d / 2, z - 0.04), (w / 2, d / 2, z), lab, inst, col)
    return w, d


def bookshelf(b, rng, inst) -> tuple[float, float]:
    w, d, h = rng.uniform(0.8, 1.2), rng.uniform(0.3, 0.36), rng.uniform(1.8, 2.1)
    col, lab = color(rng, "bookshelf"), NYU40["bookshelf"]
    b.rect((0, 0.01, 0), (w, 0, 0), (0, 0, h), lab, inst, col)  # back panel
    for x in (0, w - 0.02):
        b.box((x, 0, 0), (x + 0.02, d, h), lab, inst, col, holes=False)
    shelves = rng.integers(4, 7)
    for k in range(shelves + 1):
        z = k * (h - 0.02) / shelves
        b.box((0.02, 0, z), (w - 0.02, d, z + 0.02), lab, inst, col, holes=False)
        if 0 < k < shelves:  # a row of book-like blocks on each shelf
            x = 0.05
            while x < w - 0.15:
                bw = rng.uniform(0.03, 0.1)
                b.box((x, 0.03, z + 0.02), (x + bw, d - 0.04, z + rng.uniform(0.18, 0.26)), lab, inst,
                      color(rng, "other"), holes=False)  # fmt: skip
                x += bw + rng.uniform(0.0, 0.05)
    return w, d


def picture(b, rng, inst) -> tuple[float, float, float, float]:
    """Returns (width, depth, bottom z, height): pictures hang on walls."""
    w, h, z = rng.uniform(0.4, 1.2), rng.uniform(0.3, 0.8), rng.uniform(1.1, 1.6)
    b.box(
        (0, 0, z),
        (w, 0.04, z + h),
        NYU40["picture"],
        inst,
        color(rng, "picture"),
        holes=False,
        texture=0.15,
    )
    return w, 0.04, z, h


def counter(b, rng, inst, cabinet_inst) -> tuple[float, float]:
    """A kitchen counter top (counter) over a row of base cabinets (cabinet, own instance)."""
    w, d, z = rng.uniform(1.6, 3.0), 0.62, rng.uniform(0.88, 0.93)
    b.box((0, 0, z - 0.04), (w, d + 0.03, z), NYU40["counter"], inst, color(rng, "counter"))
    cabinet(b, rng, cabinet_inst, w=w, d=d - 0.02, h=z - 0.05)
    return w, d + 0.03


def desk(b, rng, inst) -> tuple[float, float]:
    w, d, z = rng.uniform(1.2, 1.6), rng.uniform(0.6, 0.75), rng.uniform(0.72, 0.76)
    col, lab = color(rng, "desk"), NYU40["desk"]
    b.box((0, 0, z - 0.03), (w, d, z), lab, inst, col)
    b.box((0, 0, 0), (0.03, d, z - 0.03), lab, inst, col, holes=False)
    b.rect((0, 0.03, 0.3), (w, 0, 0), (0, 0, z - 0.33), lab, inst, col)  # modesty panel
    b.box((w - 0.45, 0, 0), (w, d, z - 0.03), lab, inst, col)  # drawer block
    return w, d


def refrigerator(b, rng, inst) -> tuple[float, float]:
    w, d, h = rng.uniform(0.6, 0.8), rng.uniform(0.65, 0.75), rng.uniform(1.6, 1.9)
    col, lab = color(rng, "refrigerator"), NYU40["refrigerator"]
    b.box((0, 0, 0), (w, d, h), lab, inst, col)
    b.box((w - 0.08, d, 0.9), (w - 0.05, d + 0.04, 1.4), lab, inst, DGREY, holes=False)  # handle
    return w, d


def toilet(b, rng, inst) -> tuple[float, float]:
    col, lab = color(rng, "toilet"), NYU40["toilet"]
    b.box((0.0, 0.0, 0.4), (0.45, 0.2, rng.uniform(0.72, 0.8)), lab, inst, col)  # tank
    b.cylinder((0.225, 0.42), 0.13, 0.0, 0.3, lab, inst, col, cap=False, holes=False)
    b.bowl((0.225, 0.45), 0.19, 0.25, 0.22, 0.42, lab, inst, col)
    return 0.45, 0.72


def sink(b, rng, inst) -> tuple[float, float]:
    col, lab = color(rng, "sink"), NYU40["sink"]
    w, d, z = rng.uniform(0.5, 0.65), rng.uniform(0.42, 0.5), rng.uniform(0.8, 0.88)
    b.cylinder(
        (w / 2, d / 2), 0.08, 0.0, z - 0.15, lab, inst, col, cap=False, holes=False
    )  # pedestal
    b.bowl((w / 2, d / 2 + 0.02), w / 2 - 0.08, d / 2 - 0.08, 0.14, z, lab, inst, col)
    for origin, u, v in (((0, 0, z), (w, 0, 0), (0, 0.08, 0)), ((0, d - 0.06, z), (w, 0, 0), (0, 0.06, 0)),
                         ((0, 0.08, z), (0.08, 0, 0), (0, d - 0.14, 0)),
                         ((w - 0.08, 0.08, z), (0.08, 0, 0), (0, d - 0.14, 0))):  # fmt: skip
        b.rect(origin, u, v, lab, inst, col, holes=False)
    return w, d


def bathtub(b, rng, inst) -> tuple[float, float]:
    w, d, h, t = rng.uniform(1.5, 1.8), rng.uniform(0.7, 0.8), rng.uniform(0.5, 0.6), 0.07
    col, lab = color(rng, "bathtub"), NYU40["bathtub"]
    b.box((0, 0, 0), (w, d, h), lab, inst, col, top=False)
    for origin, u, v in (((0, 0, h), (w, 0, 0), (0, t, 0)), ((0, d - t, h), (w, 0, 0), (0, t, 0)),
                         ((0, t, h), (t, 0, 0), (0, d - 2 * t, 0)), ((w - t, t, h), (t, 0, 0), (0, d - 2 * t, 0))):  # fmt: skip
        b.rect(origin, u, v, lab, inst, col, holes=False)
    b.box((t, t, 0.12), (w - t, d - t, h), lab, inst, col, top=False, bottom=True)  # basin inside
    return w, d


def wavy(b, rng, inst, label, w, z0, z1, offset, name) -> None:
    """A hanging pleated fabric (curtains, shower curtains) along local x at depth `offset`."""
    folds, amp = max(2.0, w * rng.uniform(4, 7)), rng.uniform(0.03, 0.06)
    col = color(rng, name)

    def surface(s, t):
        return np.stack(
            [s * w, offset + amp * np.sin(2 * np.pi * folds * s), z0 + t * (z1 - z0)], 1
        )

    b.patch(surface, w * 1.3, z1 - z0, label, inst, col)


def otherfurniture(b, rng, inst) -> tuple[float, float]:
    col, lab = color(rng, "otherfurniture"), NYU40["otherfurniture"]
    if rng.random() < 0.5:  # round side table: pole and disk top
        r, z = rng.uniform(0.25, 0.35), rng.uniform(0.5, 0.6)
        b.cylinder((0, 0), 0.04, 0.0, z - 0.03, lab, inst, col, cap=False, holes=False)
        b.cylinder((0, 0), r, z - 0.03, z, lab, inst, col, holes=False)
        b.cylinder((0, 0), r * 0.6, 0.0, 0.03, lab, inst, col, holes=False)
        return 2 * r, 2 * r
    r, z = rng.uniform(0.17, 0.22), rng.uniform(0.4, 0.5)  # drum stool
    b.cylinder((0, 0), r, 0.0, z, lab, inst, col)
    return 2 * r, 2 * r


def clutter(b, rng, inst, z=0.0) -> tuple[float, float]:
    """Small boxes (NYU40 box / otherprop: ignored by the 20-class benchmark)."""
    w, d, h = rng.uniform(0.15, 0.4), rng.uniform(0.15, 0.4), rng.uniform(0.1, 0.35)
    b.box((-w / 2, -d / 2, z), (w / 2, d / 2, z + h), NYU40["box"] if rng.random() < 0.5 else NYU40["otherprop"],
          inst, color(rng, "other"), holes=False)  # fmt: skip
    return w, d
