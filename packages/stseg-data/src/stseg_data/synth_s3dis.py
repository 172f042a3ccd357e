"""Synthetic Stanford S3DIS rooms in the real layout:

    OUT/Area_<a>/<room>/<room>.txt                       all points, `x y z r g b` per line
    OUT/Area_<a>/<room>/Annotations/<class>_<k>.txt      one file per object instance
    OUT/s3dis_train.txt, OUT/s3dis_val.txt               room folders (Area_5 is validation)

The rooms are the ScanNet generator's rooms (always with a ceiling) plus a column and a beam,
with classes mapped to the 13 S3DIS classes (everything else is clutter).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stseg_data.atomic import atomic_write
from stseg_data.synth_mesh import MeshBuilder
from stseg_data.synth_objects import LGREY, WHITE
from stseg_data.synth_room import EXTRAS, ROOM_TYPES, Room

TO_S3DIS = {"wall": "wall", "floor": "floor", "ceiling": "ceiling", "door": "door", "window": "window",
            "table": "table", "desk": "table", "counter": "table", "chair": "chair", "sofa": "sofa",
            "bookshelf": "bookcase", "picture": "board", "column": "column", "beam": "beam"}  # fmt: skip
ROOM_NAMES = ("office", "conferenceRoom", "hallway", "lounge", "pantry", "storage", "WC")


def room_path(index: int) -> str:
    area = index % 6 + 1
    return f"Area_{area}/{ROOM_NAMES[index % len(ROOM_NAMES)]}_{index // 6 + 1}"


def write_s3dis_room(root: Path, index: int, seed: int, spacing: float = 0.035) -> str:
    rng = np.random.default_rng([seed, index, 2])
    kind = list(ROOM_TYPES)[index % len(ROOM_TYPES)]
    room = Room(rng, MeshBuilder(rng, spacing=spacing), kind)
    room.build(ROOM_TYPES[kind] + list(rng.choice(EXTRAS, size=2, replace=False)))
    if "ceiling" not in room.names.values():
        room.b.rect(
            (0, 0, room.h), (room.w, 0, 0), (0, room.d, 0), 22, room.new_instance("ceiling"), WHITE
        )
    side = rng.uniform(0.3, 0.5)
    room.b.box((0, 0, 0), (side, side, room.h), 38, room.new_instance("column"), LGREY)
    y = rng.uniform(0.5, room.d - 0.5)
    room.b.box(
        (0, y, room.h - 0.4),
        (room.w, y + 0.35, room.h),
        38,
        room.new_instance("beam"),
        LGREY,
        top=False,
    )
    arrays = room.b.arrays()
    name = room_path(index)
    folder = root / name
    lines_all = []
    counts: dict[str, int] = {}
    for inst in np.unique(arrays["instance"]).tolist():
        cls = TO_S3DIS.get(room.names[inst], "clutter")
        counts[cls] = counts.get(cls, 0) + 1
        mask = arrays["instance"] == inst
        text = _lines(arrays["xyz"][mask], arrays["rgb"][mask])
        with atomic_write(folder / "Annotations" / f"{cls}_{counts[cls]}.txt", "w") as handle:
            handle.write(text)
        lines_all.append(text)
    with atomic_write(folder / f"{Path(name).name}.txt", "w") as handle:
        handle.write("".join(lines_all))
    return name


def _lines(xyz: np.ndarray, rgb: np.ndarray) -> str:
    # S3DIS writes 3 decimals for coordinates and integer colours
    rows = [
        f"{x:.3f} {y:.3f} {z:.3f} {r} {g} {b}\n"
        for (x, y, z), (r, g, b) in zip(xyz.tolist(), rgb.tolist())
    ]
    return "".join(rows)


def write_s3dis_splits(root: Path, rooms: list[str]) -> None:
    val = [r for r in rooms if r.startswith("Area_5/")] or rooms[-1:]
    train = [r for r in rooms if r not in val] or rooms
    for split, items in (("train", train), ("val", val)):
        with atomic_write(root / f"s3dis_{split}.txt", "w") as handle:
            handle.write("".join(f"{r}\n" for r in items))
