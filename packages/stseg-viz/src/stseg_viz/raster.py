"""A numpy z-buffer: project coloured points orthographically into an RGBA image.

Drawing a million points with `scatter` is slow and does not respect depth; here every pixel keeps
the nearest point that lands on it (one integer argsort), then small squares ("splats") fill the
gaps when the cloud is sparse for the image size. Cost: O(N log N) for N points, independent of
matplotlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stseg_viz.errors import VizInputError

#: Named camera directions of `--view`.
VIEWS = ("top", "iso", "front")

_DEPTH_BITS = 20


def view_rotation(view: str) -> np.ndarray:
    """float64 [3, 3] rotation whose rows are the screen right, screen up and towards-camera axes."""
    if view == "top":  # looking down the z axis, x to the right, y up
        return np.eye(3)
    if view == "front":  # looking along +y from in front of the scene
        return np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    if view == "iso":
        azimuth, elevation = math.radians(55.0), math.radians(35.0)
        towards = np.array(
            [
                math.cos(elevation) * math.cos(azimuth),
                math.cos(elevation) * math.sin(azimuth),
                math.sin(elevation),
            ]
        )
        right = np.cross(-towards, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, -towards)
        return np.stack([right, up, towards])
    raise VizInputError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")


def cutaway_mask(xyz: np.ndarray, view: str, band: float = 0.1) -> np.ndarray:
    """bool [N], True = keep: drops what hides the inside of a closed room from `view`.

    Removes the top `band` of the height range (the ceiling) and, for `iso` and `front`, the
    points within `band` of the bounding-box sides that face the camera (the near walls).
    Assumes an axis-aligned room with z up, as ScanNet's aligned scans and the synthetic scenes.
    """
    low, high = xyz.min(axis=0), xyz.max(axis=0)
    margin = band * (high - low)
    keep = xyz[:, 2] <= high[2] - margin[2]
    towards = view_rotation(view)[2]  # unit vector from the scene towards the camera
    for axis in (0, 1):
        if view != "top" and towards[axis] > 0.2:
            keep &= xyz[:, axis] <= high[axis] - margin[axis]
        elif view != "top" and towards[axis] < -0.2:
            keep &= xyz[:, axis] >= low[axis] + margin[axis]
    return keep


def auto_point_size(pixel: np.ndarray, width: int, cell: int = 8) -> int:
    """Splat edge in pixels (1..9) so that the visible points cover their surfaces without holes.

    `pixel` holds the distinct pixels hit by the nearest points. They are binned into cell x cell
    squares; the median count over non-empty squares is the typical density of the visible
    surfaces (area-weighted, so a sparse floor counts as much as it shows), and the splat is sized
    to cover each square about twice.
    """
    if len(pixel) == 0:
        return 1
    u, v = pixel % width, pixel // width
    cells = (v // cell) * (width // cell + 1) + u // cell
    counts = np.bincount(cells)
    typical = float(np.median(counts[counts > 0]))
    return int(np.clip(round(math.sqrt(2.0 * cell * cell / typical)), 1, 9))


@dataclass(frozen=True)
class Projection:
    """Which point shows in which pixel: `pixel` [M] flat indices, `src` [M] point indices,
    `far` [M] quantised distance from the camera (0 = nearest), on a `height` x `width` image."""

    pixel: np.ndarray
    src: np.ndarray
    far: np.ndarray
    width: int
    height: int

    def paint(self, colors: np.ndarray, *, edges: bool = True) -> np.ndarray:
        """RGBA uint8 image [height, width, 4] of the points' uint8 colours [N, 3].

        Alpha is 255 where a point was drawn, 0 elsewhere. `edges` darkens pixels lying just
        behind a nearer neighbour pixel, which outlines objects while flat surfaces keep their
        exact colour.
        """
        flat = np.zeros((self.height * self.width, 4), dtype=np.uint8)
        flat[self.pixel, :3] = np.asarray(colors)[self.src]
        flat[self.pixel, 3] = 255
        image = flat.reshape(self.height, self.width, 4)
        if edges:
            depth_image = np.full(self.height * self.width, -1, dtype=np.int64)
            depth_image[self.pixel] = self.far
            _darken_edges(image, depth_image.reshape(self.height, self.width))
        return image


def project(
    xyz: np.ndarray,
    *,
    view: str = "iso",
    width: int = 1000,
    height: int = 800,
    point_size: int | None = None,
    margin: int = 8,
) -> Projection:
    """Z-buffer of points xyz [N, 3] seen from `view` (orthographic, fitted into the image).

    The nearest point wins each pixel; then each winner is splatted over a point_size square
    (auto-sized when None) and the nearest wins again. Paint it with `Projection.paint`; one
    projection serves any number of colourings of the same points.
    """
    cam = (np.asarray(xyz, dtype=np.float64) - np.asarray(xyz).mean(axis=0)) @ view_rotation(view).T
    low, high = cam[:, :2].min(axis=0), cam[:, :2].max(axis=0)
    extent = np.maximum(high - low, 1e-9)
    scale = min((width - 2 * margin) / extent[0], (height - 2 * margin) / extent[1])
    offset = (np.array([width, height]) - extent * scale) / 2
    u = ((cam[:, 0] - low[0]) * scale + offset[0]).astype(np.int64)
    v = (height - 1 - ((cam[:, 1] - low[1]) * scale + offset[1])).astype(np.int64)
    np.clip(u, 0, width - 1, out=u)
    np.clip(v, 0, height - 1, out=v)
    depth = cam[:, 2]
    # Quantised "distance from the camera": 0 = nearest.
    span = max(float(depth.max() - depth.min()), 1e-12)
    far = ((depth.max() - depth) / span * ((1 << _DEPTH_BITS) - 1)).astype(np.int64)

    pixel = v * width + u
    keep = _nearest_per_pixel(pixel, far)
    pixel, far, src = pixel[keep], far[keep], keep
    size = point_size or auto_point_size(pixel, width)
    if size > 1:
        pixel, far, src = _splat(pixel, far, src, size, width, height)
        keep = _nearest_per_pixel(pixel, far)
        pixel, far, src = pixel[keep], far[keep], src[keep]
    return Projection(pixel, src, far, width, height)


def rasterize(
    xyz: np.ndarray,
    colors: np.ndarray,
    *,
    view: str = "iso",
    width: int = 1000,
    height: int = 800,
    point_size: int | None = None,
    margin: int = 8,
    edges: bool = True,
) -> np.ndarray:
    """RGBA uint8 image [height, width, 4] of points xyz [N, 3] with uint8 colours [N, 3]:
    `project(...).paint(colors)`. Alpha is 255 where a point was drawn and 0 elsewhere."""
    projection = project(
        xyz, view=view, width=width, height=height, point_size=point_size, margin=margin
    )
    return projection.paint(colors, edges=edges)


def _nearest_per_pixel(pixel: np.ndarray, far: np.ndarray) -> np.ndarray:
    """Indices of the nearest entry for each distinct pixel (one stable int64 argsort)."""
    key = (pixel << _DEPTH_BITS) | far
    order = np.argsort(key, kind="stable")
    sorted_pixel = pixel[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_pixel[1:] != sorted_pixel[:-1]
    return order[first]


def _splat(
    pixel: np.ndarray, far: np.ndarray, src: np.ndarray, size: int, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of each pixel entry over a size x size square around it, clipped to the image."""
    u, v = pixel % width, pixel // width
    shifts = np.arange(size) - size // 2
    du, dv = (a.ravel() for a in np.meshgrid(shifts, shifts))
    uu = (u[None, :] + du[:, None]).ravel()
    vv = (v[None, :] + dv[:, None]).ravel()
    inside = (uu >= 0) & (uu < width) & (vv >= 0) & (vv < height)
    count = len(du)
    return (
        (vv * width + uu)[inside],
        np.tile(far, count)[inside],
        np.tile(src, count)[inside],
    )


def _darken_edges(image: np.ndarray, depth: np.ndarray, strength: float = 0.45) -> None:
    """Darken pixels that are clearly farther than a neighbour (object silhouettes), in place."""
    drawn = depth >= 0
    threshold = 0.02 * (1 << _DEPTH_BITS)  # 2 % of the scene's depth range
    behind = np.zeros(depth.shape, dtype=bool)
    padded = np.pad(np.where(drawn, depth, 1 << (_DEPTH_BITS + 1)), 1, mode="edge")
    h, w = depth.shape
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        neighbour = padded[dy : dy + h, dx : dx + w]
        behind |= depth - neighbour > threshold
    behind &= drawn
    image[behind, :3] = (image[behind, :3] * (1.0 - strength)).astype(np.uint8)
