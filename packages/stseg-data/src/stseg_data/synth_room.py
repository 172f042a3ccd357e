"""Procedural indoor rooms: walls with door and window openings, floor, optional ceiling, and
furniture placed against walls or free in the room without overlaps (see `synth_objects`)."""

from __future__ import annotations

import numpy as np

from stseg_data import synth_objects as obj
from stseg_data.synth_mesh import MeshBuilder

ROOM_TYPES: dict[str, list[str]] = {
    "bedroom": ["bed", "cabinet", "desk", "curtain", "picture", "bookshelf"],
    "living": ["sofa", "table", "bookshelf", "picture", "curtain", "otherfurniture"],
    "kitchen": ["counter", "sink", "refrigerator", "table", "cabinet"],
    "bathroom": ["toilet", "sink", "bathtub", "cabinet", "counter"],
    "office": ["desk", "bookshelf", "table", "cabinet", "picture", "otherfurniture"],
}
EXTRAS = ["cabinet", "bed", "sofa", "table", "bookshelf", "picture", "desk", "refrigerator",
          "toilet", "sink", "bathtub", "otherfurniture", "curtain"]  # fmt: skip
WALL_BUILDERS = {"cabinet": obj.cabinet, "bed": obj.bed, "sofa": obj.sofa, "bookshelf": obj.bookshelf,
                 "desk": obj.desk, "refrigerator": obj.refrigerator, "toilet": obj.toilet,
                 "sink": obj.sink, "bathtub": obj.bathtub}  # fmt: skip
TALL = {"bookshelf", "refrigerator"}
# wall-interval kinds each placement must avoid
CONFLICTS = {"low": {"door", "curtain"}, "tall": {"door", "window", "curtain", "picture"},
             "picture": {"door", "window", "curtain", "tall", "picture"}}  # fmt: skip


class Room:
    """Builds one room into a `MeshBuilder`; `names[instance]` is each object's raw category."""

    def __init__(self, rng: np.random.Generator, builder: MeshBuilder, kind: str) -> None:
        self.rng, self.b, self.kind = rng, builder, kind
        self.w, self.d, self.h = rng.uniform(3.6, 5.5), rng.uniform(3.6, 5.5), rng.uniform(2.5, 3.0)
        self.names: dict[int, str] = {}
        self.footprints: list[tuple[float, float, float, float]] = []
        self.intervals: list[list[tuple[float, float, str]]] = [[], [], [], []]
        self.openings: list[list[tuple[float, float, float, float, str]]] = [[], [], [], []]

    def new_instance(self, name: str) -> int:
        inst = len(self.names) + 1
        self.names[inst] = name
        return inst

    def wall_length(self, k: int) -> float:
        return self.w if k % 2 == 0 else self.d

    def wall_pose(self, k: int, s: float) -> tuple[float, np.ndarray]:
        """(yaw, origin) of the local frame at position s along wall k (local +y into the room)."""
        starts = [(0, 0), (self.w, 0), (self.w, self.d), (0, self.d)]
        dirs = [(1, 0), (0, 1), (-1, 0), (0, -1)]
        x, y = np.add(starts[k], np.multiply(dirs[k], s))
        return k * np.pi / 2, np.array([x, y, 0.0])

    # --- structure -------------------------------------------------------------------------
    def build(self, objects: list[str]) -> None:
        self._openings()
        for k in range(4):
            self._wall(k)
        self.b.rect((0, 0, 0), (self.w, 0, 0), (0, self.d, 0), obj.NYU40["floor"],
                    self.new_instance("floor"), obj.color(self.rng, "floor"))  # fmt: skip
        if self.rng.random() < 0.5:
            hole_rate, self.b.hole_rate = self.b.hole_rate, 0.9
            self.b.rect((0, 0, self.h), (self.w, 0, 0), (0, self.d, 0), obj.NYU40["ceiling"],
                        self.new_instance("ceiling"), obj.color(self.rng, "ceiling"))  # fmt: skip
            self.b.hole_rate = hole_rate
        for name in objects:
            self.place(name)
        for _ in range(self.rng.integers(2, 6)):
            self._free(lambda c, i: obj.clutter(c, self.rng, i), "box")

    def _openings(self) -> None:
        door_wall = int(self.rng.integers(4))
        s = self.rng.uniform(0.2, self.wall_length(door_wall) - 1.2)
        self._open(door_wall, s, s + 0.9, 0.0, 2.05, "door")
        yaw, origin = self.wall_pose(door_wall, s)
        self._block(yaw, origin, 0.9, 0.9)  # door swing area stays free
        for _ in range(self.rng.integers(1, 3)):
            k = int(self.rng.integers(4))
            width = self.rng.uniform(0.8, 1.6)
            s = self.rng.uniform(0.3, self.wall_length(k) - width - 0.3)
            if self._free_span(k, s - 0.3, s + width + 0.3, {"door", "window"}):
                self._open(
                    k, s, s + width, self.rng.uniform(0.95, 1.05), min(2.2, self.h - 0.3), "window"
                )
                if "curtain" in ROOM_TYPES.get(self.kind, []) or self.rng.random() < 0.3:
                    self._curtain(k, s - 0.25, width + 0.5)

    def _open(self, k, a, b, z0, z1, kind) -> None:
        self.openings[k].append((a, b, z0, z1, kind))
        self.intervals[k].append((a - 0.05, b + 0.05, kind))

    def _curtain(self, k, s, width) -> None:
        c = self.b.child()
        obj.wavy(c, self.rng, self.new_instance("curtain"), obj.NYU40["curtain"], width, 0.05,
                 min(2.4, self.h - 0.1), 0.12, "curtain")  # fmt: skip
        self.b.merge(c, *self.wall_pose(k, s))
        self.intervals[k].append((s, s + width, "curtain"))

    def _wall(self, k: int) -> None:
        length, inst = self.wall_length(k), self.new_instance("wall")
        col, lab = obj.color(self.rng, "wall"), obj.NYU40["wall"]
        c, x = self.b.child(), 0.0
        for a, b, z0, z1, kind in sorted(self.openings[k]):
            c.rect((x, 0, 0), (a - x, 0, 0), (0, 0, self.h), lab, inst, col)
            c.rect((a, 0, z1), (b - a, 0, 0), (0, 0, self.h - z1), lab, inst, col)
            if z0 > 0:
                c.rect((a, 0, 0), (b - a, 0, 0), (0, 0, z0), lab, inst, col)
            self._opening_surfaces(c, a, b, z0, z1, kind)
            x = b
        c.rect((x, 0, 0), (length - x, 0, 0), (0, 0, self.h), lab, inst, col)
        self.b.merge(c, *self.wall_pose(k, 0.0))

    def _opening_surfaces(self, c: MeshBuilder, a, b, z0, z1, kind) -> None:
        inst, lab = self.new_instance(kind), obj.NYU40[kind]
        col, depth = obj.color(self.rng, kind), 0.1 if kind == "door" else 0.15
        for x in (a, b):  # reveals between the wall plane and the recessed panel
            c.rect((x, -depth, z0), (0, depth, 0), (0, 0, z1 - z0), lab, inst, col, holes=False)
        c.rect((a, -depth, z1), (b - a, 0, 0), (0, depth, 0), lab, inst, col, holes=False)
        if kind == "door":
            c.rect((a, -depth, 0), (b - a, 0, 0), (0, 0, z1), lab, inst, col)
            handle = (-depth, -depth + 0.06)
            c.box(
                (b - 0.12, handle[0], 1.0),
                (b - 0.06, handle[1], 1.05),
                lab,
                inst,
                obj.DGREY,
                holes=False,
            )
        else:  # glass is badly scanned: a sparse, holey pane, plus a sill into the room
            hole_rate, c.hole_rate = c.hole_rate, 1.0
            c.rect((a, -depth, z0), (b - a, 0, 0), (0, 0, z1 - z0), lab, inst, col)
            c.hole_rate = hole_rate
            c.box((a - 0.05, -depth, z0 - 0.04), (b + 0.05, 0.06, z0), lab, inst, col, holes=False)

    # --- placement -------------------------------------------------------------------------
    def _free_span(self, k, a, b, kinds) -> bool:
        return all(b <= x0 or a >= x1 for x0, x1, kind in self.intervals[k] if kind in kinds)

    def _footprint(self, yaw, origin, w, d, centred=False):
        xs, ys = (np.array([-w / 2, w / 2]), np.array([-d / 2, d / 2])) if centred else (
            np.array([0, w]), np.array([0, d]))  # fmt: skip
        corners = np.array([[x, y] for x in xs for y in ys])
        c, s = np.cos(yaw), np.sin(yaw)
        world = corners @ np.array([[c, s], [-s, c]]) + origin[:2]
        return (*world.min(axis=0), *world.max(axis=0))

    def _collides(self, box, margin=0.03) -> bool:
        x0, y0, x1, y1 = box
        if x0 < -1e-6 or y0 < -1e-6 or x1 > self.w + 1e-6 or y1 > self.d + 1e-6:
            return True
        return any(x0 < b[2] + margin and b[0] < x1 + margin and y0 < b[3] + margin and b[1] < y1 + margin
                   for b in self.footprints)  # fmt: skip

    def _block(self, yaw, origin, w, d) -> None:
        self.footprints.append(self._footprint(yaw, origin, w, d))

    def place(self, name: str) -> None:
        if name in WALL_BUILDERS or name == "counter":
            self._against_wall(name)
        elif name == "picture":
            self._picture()
        elif name == "curtain":
            k = int(self.rng.integers(4))
            s = self.rng.uniform(0.2, self.wall_length(k) - 1.5)
            if self._free_span(
                k, s, s + 1.2, {"door", "curtain", "low", "tall", "window", "picture"}
            ):
                self._curtain(k, s, 1.2)
        elif name == "table":
            self._table_with_chairs()
        elif name == "otherfurniture":
            self._free(lambda c, i: obj.otherfurniture(c, self.rng, i), name)

    def _against_wall(self, name: str) -> None:
        c = self.b.child()
        inst = self.new_instance(name)
        if name == "counter":
            w, d = obj.counter(c, self.rng, inst, self.new_instance("cabinet"))
        else:
            w, d = WALL_BUILDERS[name](c, self.rng, inst)
        kind = "tall" if name in TALL else "low"
        for _ in range(40):
            k = int(self.rng.integers(4))
            if self.wall_length(k) < w + 0.1:
                continue
            s = self.rng.uniform(0.02, self.wall_length(k) - w - 0.02)
            yaw, origin = self.wall_pose(k, s)
            box = self._footprint(yaw, origin, w, d)
            if self._free_span(k, s, s + w, CONFLICTS[kind]) and not self._collides(box):
                if name == "bathtub":
                    obj.wavy(c, self.rng, self.new_instance("shower curtain"), obj.NYU40["shower curtain"],
                             w, 0.5, 2.0, d + 0.03, "shower curtain")  # fmt: skip
                if name == "desk":
                    self._chair_at(yaw, origin, w * 0.35, d + 0.35, yaw + np.pi)
                self.b.merge(c, yaw, origin)
                self.footprints.append(box)
                self.intervals[k].append((s, s + w, kind))
                return

    def _picture(self) -> None:
        c = self.b.child()
        w, _, _, _ = obj.picture(c, self.rng, self.new_instance("picture"))
        for _ in range(30):
            k = int(self.rng.integers(4))
            s = self.rng.uniform(0.1, max(0.11, self.wall_length(k) - w - 0.1))
            if self._free_span(k, s, s + w, CONFLICTS["picture"]):
                self.b.merge(c, *self.wall_pose(k, s))
                self.intervals[k].append((s, s + w, "picture"))
                return

    def _free(self, build, name: str, margin: float = 0.4):
        c = self.b.child()
        w, d = build(c, self.new_instance(name))
        for _ in range(40):
            yaw = self.rng.uniform(0, 2 * np.pi)
            origin = np.array(
                [
                    self.rng.uniform(margin, self.w - margin),
                    self.rng.uniform(margin, self.d - margin),
                    0.0,
                ]
            )
            box = self._footprint(yaw, origin, w, d, centred=True)
            if not self._collides(box):
                self.b.merge(c, yaw, origin)
                self.footprints.append(box)
                return yaw, origin, w, d
        return None

    def _table_with_chairs(self) -> None:
        placed = self._free(lambda c, i: obj.table(c, self.rng, i), "table", margin=1.2)
        if placed is None:
            return
        yaw, origin, w, d = placed
        table_box = self.footprints.pop()  # a rotated table's bounding box would reject its chairs
        for side in range(4):
            if self.rng.random() < 0.7:
                # chair centre just outside the table edge, facing the table centre
                local = [(0, -d / 2 - 0.3), (w / 2 + 0.3, 0), (0, d / 2 + 0.3), (-w / 2 - 0.3, 0)][
                    side
                ]
                c, s = np.cos(yaw), np.sin(yaw)
                pos = origin + np.array(
                    [c * local[0] - s * local[1], s * local[0] + c * local[1], 0]
                )
                self._chair_at(0.0, pos, 0.0, 0.0, yaw + side * np.pi / 2)
        self.footprints.append(table_box)

    def _chair_at(self, yaw, origin, x, y, facing) -> None:
        """A chair at local (x, y) of the frame (yaw, origin); its seat front faces `facing`."""
        c = self.b.child()
        cw, cd = obj.chair(c, self.rng, self.new_instance("chair"))
        cs, sn = np.cos(yaw), np.sin(yaw)
        pos = np.asarray(origin) + np.array([cs * x - sn * y, sn * x + cs * y, 0])
        chair_yaw = facing + self.rng.normal(0, 0.15)
        box = self._footprint(chair_yaw, pos, cw, cd, centred=True)
        if not self._collides(box, margin=0.0):
            self.b.merge(c, chair_yaw, pos)
            self.footprints.append(box)
