"""Augmentations of the original Minkowski CNN recipes, as pure functions.

Each takes arrays and a `numpy.random.Generator` and returns new arrays (inputs are never
modified). Geometry works on xyz [N, 3] (or the spatial part of xyzt); colours are rgb [N, 3] in
[0, 1]. Zero denominators (one point, constant colour) make a transform a no-op (F12).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Bounds = Sequence[tuple[float, float]]


def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """R = Rz @ Ry @ Rx for angles (about x, y, z) in radians; [3, 3]."""
    ax, ay, az = angles
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_rotation(xyz: np.ndarray, rng: np.random.Generator, bounds: Bounds) -> np.ndarray:
    """Rotate about the centroid by an angle drawn uniformly per axis from bounds ((lo, hi) x3);
    give the upright axis (-pi, pi) for a full circle and the others a few degrees."""
    angles = [rng.uniform(lo, hi) if hi > lo else lo for lo, hi in bounds]
    centre = xyz[:, :3].mean(axis=0)
    out = xyz.astype(np.float64, copy=True)
    # einsum: a 3x3 product through BLAS threads costs more than it computes
    out[:, :3] = np.einsum("ij,nj->ni", rotation_matrix(angles), xyz[:, :3] - centre) + centre
    return out


def random_quarter_turn(xyz: np.ndarray, rng: np.random.Generator, upright: int = 2) -> np.ndarray:
    """Rotate about the upright axis through the centroid by k x 90 degrees, k uniform in 0..3:
    exact (axes swapped and negated), so an axis-aligned room stays axis-aligned on the grid."""
    k = int(rng.integers(4))
    a, b = [i for i in range(3) if i != upright]
    centre = xyz[:, :3].mean(axis=0)
    out = xyz.astype(np.float64, copy=True)
    u, v = xyz[:, a] - centre[a], xyz[:, b] - centre[b]
    for _ in range(k):
        u, v = -v, u
    out[:, a], out[:, b] = u + centre[a], v + centre[b]
    return out


def random_scale(
    xyz: np.ndarray, rng: np.random.Generator, bounds: tuple[float, float] = (0.9, 1.1)
) -> np.ndarray:
    """Scale the spatial coordinates about the centroid by one factor in bounds."""
    centre = xyz[:, :3].mean(axis=0)
    out = xyz.astype(np.float64, copy=True)
    out[:, :3] = (xyz[:, :3] - centre) * rng.uniform(*bounds) + centre
    return out


def random_flip(
    xyz: np.ndarray, rng: np.random.Generator, axes: Sequence[int] = (0, 1), p: float = 0.5
) -> np.ndarray:
    """Mirror each listed axis about its centre with probability p. Axis 3 of an xyzt array is
    time: flipping it reverses the frame order (t -> max t - t)."""
    out = xyz.astype(np.float64, copy=True)
    for axis in axes:
        if rng.random() < p:
            lo, hi = out[:, axis].min(), out[:, axis].max()
            out[:, axis] = lo + hi - out[:, axis]
    return out


def random_translation(
    xyz: np.ndarray, rng: np.random.Generator, ratio_bounds: Bounds
) -> np.ndarray:
    """Shift each axis by a fraction (uniform in its bounds) of the cloud's extent on that axis."""
    extent = xyz[:, :3].max(axis=0) - xyz[:, :3].min(axis=0)
    shift = np.array([rng.uniform(lo, hi) if hi > lo else lo for lo, hi in ratio_bounds]) * extent
    out = xyz.astype(np.float64, copy=True)
    out[:, :3] += shift
    return out


def random_dropout(
    n: int, rng: np.random.Generator, ratio: float = 0.2, p: float = 0.5
) -> np.ndarray:
    """Sorted indices of the points to keep: with probability p, drop `ratio` of them at random."""
    if n <= 1 or rng.random() >= p:
        return np.arange(n)
    keep = max(1, round(n * (1 - ratio)))
    return np.sort(rng.choice(n, keep, replace=False))


def _box_blur(grid: np.ndarray, axis: int) -> np.ndarray:
    padded = np.pad(grid, [(1, 1) if a == axis else (0, 0) for a in range(grid.ndim)], mode="edge")
    take = lambda s: np.take(padded, np.arange(s, s + grid.shape[axis]), axis=axis)  # noqa: E731
    return (take(0) + take(1) + take(2)) / 3.0


def _trilinear(grid: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Interpolate grid [X, Y, Z, C] at fractional cell coordinates [N, 3]."""
    shape = np.array(grid.shape[:3])
    base = np.clip(np.floor(coords).astype(np.int64), 0, shape - 2)
    frac = np.clip(coords - base, 0.0, 1.0)
    flat = grid.reshape(-1, grid.shape[3])
    strides = (shape[1] * shape[2], shape[2], 1)
    start = base @ np.array(strides)
    out = np.zeros((len(coords), grid.shape[3]))
    for dx in (0, 1):
        wx = frac[:, 0] if dx else 1 - frac[:, 0]
        for dy in (0, 1):
            wxy = wx * (frac[:, 1] if dy else 1 - frac[:, 1])
            for dz in (0, 1):
                w = wxy * (frac[:, 2] if dz else 1 - frac[:, 2])
                out += w[:, None] * flat[start + dx * strides[0] + dy * strides[1] + dz]
    return out


def elastic_distortion(
    xyz: np.ndarray, rng: np.random.Generator, granularity: float, magnitude: float
) -> np.ndarray:
    """Smooth random displacement field: Gaussian noise on a grid of cell size `granularity`,
    box-blurred 3 times per axis, interpolated at every point and scaled by `magnitude`."""
    spatial = xyz[:, :3]
    lo = spatial.min(axis=0) - granularity
    dims = ((spatial.max(axis=0) - lo) // granularity).astype(int) + 3
    if np.prod(dims) > 5e7:  # a pathological granularity would allocate gigabytes
        return xyz.astype(np.float64, copy=True)
    noise = rng.normal(size=(*dims, 3))
    for _ in range(3):
        for axis in range(3):
            noise = _box_blur(noise, axis)
    out = xyz.astype(np.float64, copy=True)
    out[:, :3] += _trilinear(noise, (spatial - lo) / granularity) * magnitude
    return out


def chromatic_auto_contrast(rgb: np.ndarray, rng: np.random.Generator, p: float = 0.2,
                            blend: float | None = None) -> np.ndarray:  # fmt: skip
    """With probability p, stretch each channel to [0, 1] and blend with the original."""
    if rng.random() >= p:
        return rgb.copy()
    lo, hi = rgb.min(axis=0, keepdims=True), rgb.max(axis=0, keepdims=True)
    span = np.where(hi - lo > 1e-6, hi - lo, 1.0)
    contrast = np.where(hi - lo > 1e-6, (rgb - lo) / span, rgb)
    factor = rng.random() if blend is None else blend
    return ((1 - factor) * rgb + factor * contrast).astype(rgb.dtype)


def chromatic_translation(
    rgb: np.ndarray, rng: np.random.Generator, p: float = 0.95, ratio: float = 0.1
) -> np.ndarray:
    """With probability p, add one random offset in [-ratio, ratio] per channel; clip to [0, 1]."""
    if rng.random() >= p:
        return rgb.copy()
    shift = (rng.random(3) - 0.5) * 2 * ratio
    return np.clip(rgb + shift, 0, 1).astype(rgb.dtype)


def chromatic_jitter(
    rgb: np.ndarray, rng: np.random.Generator, p: float = 0.95, std: float = 0.01
) -> np.ndarray:
    """With probability p, add per-point Gaussian noise of `std`; clip to [0, 1]."""
    if rng.random() >= p:
        return rgb.copy()
    return np.clip(rgb + rng.normal(0, std, rgb.shape), 0, 1).astype(rgb.dtype)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    maxc, minc = rgb.max(axis=1), rgb.min(axis=1)
    delta = maxc - minc
    safe = np.where(delta > 0, delta, 1.0)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    h = np.where(
        maxc == r, (g - b) / safe, np.where(maxc == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe)
    )
    h = np.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    s = np.where(maxc > 0, delta / np.where(maxc > 0, maxc, 1.0), 0.0)
    return np.stack([h, s, maxc], axis=1)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h, s, v = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    i = np.floor(h * 6.0).astype(int) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [
        np.stack(c, 1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
    ]
    return np.choose(i[:, None], choices)


def hue_saturation(rgb: np.ndarray, rng: np.random.Generator, hue_max: float = 0.5,
                   saturation_max: float = 0.2) -> np.ndarray:  # fmt: skip
    """Shift hue by up to ±hue_max/2 (fraction of a turn) and scale saturation by 1 ± saturation_max."""
    hsv = rgb_to_hsv(rgb.astype(np.float64))
    hsv[:, 0] = (hsv[:, 0] + (rng.random() - 0.5) * hue_max) % 1.0
    hsv[:, 1] = np.clip(hsv[:, 1] * (1 + (rng.random() * 2 - 1) * saturation_max), 0, 1)
    return np.clip(hsv_to_rgb(hsv), 0, 1).astype(rgb.dtype)


def random_voxel_shift(
    coords: np.ndarray, rng: np.random.Generator, max_shift: int = 100
) -> np.ndarray:
    """Add one random integer offset in [-max_shift, max_shift] per spatial axis to voxel coords
    [M, D] (applied once per batch so relative positions are unchanged)."""
    out = coords.copy()
    dims = min(3, coords.shape[1])
    out[:, :dims] += rng.integers(-max_shift, max_shift + 1, size=dims).astype(coords.dtype)
    return out
