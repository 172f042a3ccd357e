"""Building blocks of the synthetic scenes: triangulated parametric patches with labels.

A `MeshBuilder` accumulates vertices, triangle faces, per-vertex colour, label, instance and
over-segment ids. Every surface is a regular (s, t) grid of a parametric function, triangulated
two triangles per cell, with Gaussian jitter, soft shading and optional occlusion holes (disks
of removed vertices, as unscanned regions in real captures). Everything is driven by one
`numpy.random.Generator`, so a seed fixes the scene.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Surface = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (s [K], t [K]) in [0,1] -> xyz [K,3]


@dataclass
class MeshBuilder:
    """Accumulates one scene. `spacing` is the target vertex spacing in scene units."""

    rng: np.random.Generator
    spacing: float = 0.03
    noise: float = 0.004
    segment_size: float = 0.4
    hole_rate: float = 0.3
    vertices: list[np.ndarray] = field(default_factory=list)
    colors: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    instances: list[np.ndarray] = field(default_factory=list)
    segments: list[np.ndarray] = field(default_factory=list)
    faces: list[np.ndarray] = field(default_factory=list)
    count: int = 0
    next_segment: int = 0
    pose: tuple[np.ndarray, np.ndarray] | None = None  # (R [3,3], t [3]) applied to new surfaces

    def set_pose(self, yaw: float = 0.0, origin=(0.0, 0.0, 0.0)) -> None:
        """Place following surfaces: rotate local coordinates by `yaw` about z, then translate."""
        c, s = np.cos(yaw), np.sin(yaw)
        self.pose = (
            np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]),
            np.asarray(origin, dtype=np.float64),
        )

    def patch(
        self,
        surface: Surface,
        size_s: float,
        size_t: float,
        label: int,
        instance: int,
        color: np.ndarray,
        *,
        holes: bool = True,
        texture: float = 0.04,
    ) -> None:
        """Add the surface sampled on a grid of about `spacing`; sizes are its lengths along s, t."""
        ns = max(2, int(np.ceil(size_s / self.spacing)) + 1)
        nt = max(2, int(np.ceil(size_t / self.spacing)) + 1)
        grid_s, grid_t = np.meshgrid(np.linspace(0, 1, ns), np.linspace(0, 1, nt), indexing="ij")
        s, t = grid_s.ravel(), grid_t.ravel()
        xyz = surface(s, t)
        if self.pose is not None:
            xyz = xyz @ self.pose[0].T + self.pose[1]
        xyz = xyz + self.rng.normal(0, self.noise, size=(s.size, 3))
        keep = np.ones(s.size, dtype=bool)
        if holes and self.rng.random() < self.hole_rate and size_s * size_t > 0.3:
            for _ in range(self.rng.integers(1, 3)):
                cs, ct, r = self.rng.random(), self.rng.random(), self.rng.uniform(0.05, 0.2)
                keep &= ((s - cs) * size_s) ** 2 + ((t - ct) * size_t) ** 2 > r**2
        # two triangles per grid cell, kept only when all three corners survive
        i, j = np.meshgrid(np.arange(ns - 1), np.arange(nt - 1), indexing="ij")
        a = (i * nt + j).ravel()
        tri = np.concatenate(
            [np.stack([a, a + nt, a + 1], 1), np.stack([a + 1, a + nt, a + nt + 1], 1)]
        )
        tri = tri[keep[tri].all(axis=1)]
        remap = np.cumsum(keep) - 1
        self.faces.append(remap[tri] + self.count)
        # over-segmentation: square tiles of about segment_size in (s, t)
        tiles_s = max(1, round(size_s / self.segment_size))
        tiles_t = max(1, round(size_t / self.segment_size))
        tile = np.minimum((s * tiles_s).astype(int), tiles_s - 1) * tiles_t + np.minimum(
            (t * tiles_t).astype(int), tiles_t - 1
        )
        self.segments.append(self.next_segment + tile[keep])
        self.next_segment += tiles_s * tiles_t
        n = int(keep.sum())
        shade = self.rng.uniform(0.85, 1.05) + self.rng.normal(0, texture, size=(n, 1))
        rgb = np.clip(np.asarray(color)[None, :] * shade + self.rng.normal(0, 0.02, (n, 3)), 0, 1)
        self.vertices.append(xyz[keep])
        self.colors.append(rgb)
        self.labels.append(np.full(n, label, dtype=np.int64))
        self.instances.append(np.full(n, instance, dtype=np.int64))
        self.count += n

    def rect(self, origin, u, v, label, instance, color, **kw) -> None:
        """Planar rectangle origin + s*u + t*v."""
        origin, u, v = (np.asarray(x, dtype=np.float64) for x in (origin, u, v))
        self.patch(lambda s, t: origin + s[:, None] * u + t[:, None] * v,
                   float(np.linalg.norm(u)), float(np.linalg.norm(v)), label, instance, color, **kw)  # fmt: skip

    def box(self, lo, hi, label, instance, color, *, bottom=False, top=True, **kw) -> None:
        """Axis-aligned box surface from corner lo to hi (no bottom face by default)."""
        (x0, y0, z0), (x1, y1, z1) = lo, hi
        dx, dy, dz = x1 - x0, y1 - y0, z1 - z0
        sides = [
            ((x0, y0, z0), (dx, 0, 0), (0, 0, dz)), ((x0, y1, z0), (dx, 0, 0), (0, 0, dz)),
            ((x0, y0, z0), (0, dy, 0), (0, 0, dz)), ((x1, y0, z0), (0, dy, 0), (0, 0, dz)),
        ]  # fmt: skip
        if top:
            sides.append(((x0, y0, z1), (dx, 0, 0), (0, dy, 0)))
        if bottom:
            sides.append(((x0, y0, z0), (dx, 0, 0), (0, dy, 0)))
        for origin, u, v in sides:
            self.rect(origin, u, v, label, instance, color, **kw)

    def cylinder(self, centre, radius, z0, z1, label, instance, color, *, cap=True, **kw) -> None:
        """Vertical cylinder wall (and top cap) around centre (x, y)."""
        cx, cy = centre

        def wall(s, t):
            a = 2 * np.pi * s
            return np.stack(
                [cx + radius * np.cos(a), cy + radius * np.sin(a), z0 + t * (z1 - z0)], 1
            )

        self.patch(wall, 2 * np.pi * radius, z1 - z0, label, instance, color, **kw)
        if cap:

            def disk(s, t):
                a, r = 2 * np.pi * s, radius * t
                return np.stack([cx + r * np.cos(a), cy + r * np.sin(a), np.full_like(s, z1)], 1)

            self.patch(
                disk, np.pi * radius, radius, label, instance, color, **{**kw, "holes": False}
            )

    def bowl(self, centre, rx, ry, depth, z_rim, label, instance, color, **kw) -> None:
        """Half-ellipsoid basin opening upwards (sinks, toilet bowls)."""
        cx, cy = centre

        def surface(s, t):
            a, p = 2 * np.pi * s, 0.5 * np.pi * t
            return np.stack([cx + rx * np.cos(a) * np.cos(p), cy + ry * np.sin(a) * np.cos(p),
                             z_rim - depth * np.sin(p)], 1)  # fmt: skip

        self.patch(surface, np.pi * (rx + ry), 0.5 * np.pi * max(rx, depth), label, instance, color,
                   **{**kw, "holes": False})  # fmt: skip

    def merge(self, other: MeshBuilder, yaw: float = 0.0, origin=(0.0, 0.0, 0.0)) -> None:
        """Append another builder's surfaces, rotated by `yaw` about z and translated."""
        if not other.vertices:
            return
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
        self.vertices += [v @ rot.T + np.asarray(origin) for v in other.vertices]
        self.faces += [f + self.count for f in other.faces]
        self.segments += [g + self.next_segment for g in other.segments]
        self.colors += other.colors
        self.labels += other.labels
        self.instances += other.instances
        self.count += other.count
        self.next_segment += other.next_segment

    def child(self) -> MeshBuilder:
        """An empty builder with the same settings and generator (build locally, then merge)."""
        return MeshBuilder(self.rng, self.spacing, self.noise, self.segment_size, self.hole_rate)

    def arrays(self) -> dict[str, np.ndarray]:
        """Concatenated xyz float32 [N,3], rgb uint8 [N,3], label, instance, segment [N], faces [F,3]."""
        return {
            "xyz": np.concatenate(self.vertices).astype(np.float32),
            "rgb": np.round(np.concatenate(self.colors) * 255).astype(np.uint8),
            "label": np.concatenate(self.labels),
            "instance": np.concatenate(self.instances),
            "segment": np.concatenate(self.segments),
            "faces": np.concatenate(self.faces).astype(np.int32),
        }
