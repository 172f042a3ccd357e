"""Voxelization as the original Minkowski CNN data pipeline (DESIGN §5), vectorised.

Each point goes to the voxel `floor(coord / voxel_size)`; a voxel keeps the features of its
lowest-index point; its label is the points' label when they all agree, else `ignore_label` (the
original's rule; `label_mode="majority"` instead takes the most frequent non-ignored label); the
inverse map sends every input point to its voxel row. Works for any dimension D (3 for scenes, 4
for space + time, where the time axis is an integer frame index with voxel size 1).

Speed: the floored coordinates are packed into one int64 key per point; when the key range allows,
the point index rides in the low digits of the same int64 (`key * N + i`), so one plain `np.sort`
(SIMD-accelerated in numpy) orders points by voxel and, within a voxel, by index. Overflow of the
int32 output grid and of the packed key are checked before any cast (RELIABILITY F10, G7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stseg_data.errors import StsegInputError

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_LIMIT = 2**63 - 1
LABEL_MODES = ("unanimous", "majority")


@dataclass
class Voxelized:
    """Result of `voxelize` (M voxels from N points).

    coords:   int32 [M, D] voxel coordinates, sorted lexicographically (first axis slowest).
    features: [M, C] features of each voxel's representative point, or None.
    labels:   int64 [M] voxel labels (unanimous, else ignore; or the majority), or None.
    inverse:  int64 [N] voxel row of every input point (-1 for points removed by clip_bounds).
    index:    int64 [M] representative point of each voxel (its lowest original index).
    """

    coords: np.ndarray
    features: np.ndarray | None
    labels: np.ndarray | None
    inverse: np.ndarray
    index: np.ndarray

    def __len__(self) -> int:
        return int(self.coords.shape[0])


def voxel_sizes(voxel_size: float | Sequence[float], dim: int) -> np.ndarray:
    """Per-axis voxel sizes [D]. A scalar applies to the (up to) 3 spatial axes; axes beyond the
    third (time) get size 1, so integer frame indices stay integer voxel coordinates."""
    if np.ndim(voxel_size) == 0:
        sizes = np.ones(dim, dtype=np.float64)
        sizes[: min(dim, 3)] = float(voxel_size)  # type: ignore[arg-type]
    else:
        sizes = np.asarray(voxel_size, dtype=np.float64)
        if sizes.shape != (dim,):
            raise StsegInputError(f"voxel_size has {sizes.size} values for {dim}-D points")
    if not (np.isfinite(sizes).all() and (sizes > 0).all()):
        raise StsegInputError(f"voxel_size must be positive and finite, got {sizes.tolist()}")
    return sizes


def check_finite(xyz: np.ndarray, what: str = "points") -> tuple[np.ndarray, np.ndarray]:
    """Per-axis (min, max) [D] of xyz [N, D]; raise `StsegInputError` with the count and first
    index of non-finite rows (F9). min/max propagate NaN and expose inf, so the detailed scan
    runs only when something is wrong."""
    lo, hi = xyz.min(axis=0), xyz.max(axis=0)
    if np.isfinite(lo).all() and np.isfinite(hi).all():
        return lo, hi
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise StsegInputError(
            f"{what}: {bad.size} points with non-finite coordinates, first at index {int(bad[0])}"
        )
    return lo, hi


def clip_mask(xyz: np.ndarray, clip_bounds: Sequence[tuple[float, float]]) -> np.ndarray:
    """Boolean [N]: points inside `clip_bounds` ((lo, hi) per axis, relative to the bounding-box
    centre of the cloud), as the original `CLIP_BOUND`. Axes beyond len(clip_bounds) are free."""
    keep = np.ones(xyz.shape[0], dtype=bool)
    for axis, bound in enumerate(clip_bounds):
        if bound is None:
            continue
        lo, hi = bound
        centre = 0.5 * (xyz[:, axis].min() + xyz[:, axis].max())
        keep &= (xyz[:, axis] >= centre + lo) & (xyz[:, axis] < centre + hi)
    return keep


def grid_range(
    lo_xyz: np.ndarray, hi_xyz: np.ndarray, sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of floor(xyz / sizes) per axis as float64 [D] from the coordinate bounds
    (floor is monotonic), refusing anything outside int32 (G7)."""
    lo = np.floor(lo_xyz / sizes)
    hi = np.floor(hi_xyz / sizes)
    if (lo < INT32_MIN).any() or (hi > INT32_MAX).any():
        raise StsegInputError(
            f"voxel coordinates span [{lo.tolist()}, {hi.tolist()}], outside int32: recentre the "
            "cloud or use a larger voxel size"
        )
    return lo, hi


def floor_coords(xyz: np.ndarray, voxel_size: float | Sequence[float]) -> np.ndarray:
    """floor(xyz / voxel_size) as int64 [N, D] (checked against int32 first)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    sizes = voxel_sizes(voxel_size, xyz.shape[1])
    grid_range(*check_finite(xyz), sizes)
    return np.floor(xyz / sizes).astype(np.int64)


def voxelize(
    xyz: np.ndarray,
    voxel_size: float | Sequence[float],
    *,
    features: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    ignore_label: int = 255,
    clip_bounds: Sequence[tuple[float, float]] | None = None,
    label_mode: str = "unanimous",
) -> Voxelized:
    """Voxelize N points xyz [N, D] (float) with optional features [N, C] and labels [N].

    `label_mode`: "unanimous" (the original: a voxel whose points disagree gets `ignore_label`,
    so boundary voxels never train) or "majority" (the most frequent label among the voxel's
    non-ignored points, ties to the smaller label; coarse grids keep their boundary voxels).

    Raises `StsegInputError` on NaN/inf coordinates, an empty cloud (also after clipping),
    misaligned arrays and grids that overflow int32.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] < 1:
        raise StsegInputError(f"voxelize: xyz must have shape [N, D], got {xyz.shape}")
    n, dim = xyz.shape
    if label_mode not in LABEL_MODES:
        raise StsegInputError(
            f"voxelize: label_mode must be one of {LABEL_MODES}, got {label_mode!r}"
        )
    if n == 0:
        raise StsegInputError("voxelize: 0 points")
    for name, arr in (("features", features), ("labels", labels)):
        if arr is not None and len(arr) != n:
            raise StsegInputError(f"voxelize: {name} has {len(arr)} rows for {n} points")
    bounds = check_finite(xyz, "voxelize")
    sizes = voxel_sizes(voxel_size, dim)
    kept = None
    if clip_bounds is not None:
        keep = clip_mask(xyz, clip_bounds)
        if not keep.any():
            raise StsegInputError("voxelize: 0 points left inside clip_bounds")
        if not keep.all():
            kept = np.flatnonzero(keep)
            xyz = xyz[kept]
            bounds = (xyz.min(axis=0), xyz.max(axis=0))
    lo, hi = grid_range(*bounds, sizes)
    extents = [int(e) for e in hi - lo + 1]
    order, sorted_key, starts = _sort_by_voxel(xyz, sizes, lo, extents)
    # voxel id of every sorted point: running count of voxel starts
    flags = np.zeros(len(order), dtype=bool)
    flags[starts[1:]] = True
    sorted_vid = np.cumsum(flags, dtype=np.int64)
    local_inverse = np.empty(len(order), dtype=np.int64)
    local_inverse[order] = sorted_vid
    local_index = order[starts]
    if kept is None:
        index, inverse = local_index, local_inverse
    else:
        index = kept[local_index]
        inverse = np.full(n, -1, dtype=np.int64)
        inverse[kept] = local_inverse
    voxel_labels = None
    if labels is not None:
        point_order = order if kept is None else kept[order]
        sorted_labels = np.asarray(labels, dtype=np.int64)[point_order]
        if label_mode == "majority":
            voxel_labels = majority_labels(sorted_vid, sorted_labels, len(starts), ignore_label)
        else:
            voxel_labels = sorted_labels[starts]
            # a label change inside a voxel (not at its start) makes it ambiguous
            mixed = sorted_labels[1:] != sorted_labels[:-1]
            mixed &= ~flags[1:]
            voxel_labels[sorted_vid[1:][mixed]] = ignore_label
    return Voxelized(
        coords=_decode(
            None if sorted_key is None else sorted_key[starts], lo, extents, xyz, sizes, local_index
        ),
        features=None if features is None else np.asarray(features)[index],
        labels=voxel_labels,
        inverse=inverse,
        index=index,
    )


def majority_labels(
    voxel_of_point: np.ndarray, labels: np.ndarray, num_voxels: int, ignore_label: int
) -> np.ndarray:
    """int64 [M]: each voxel's most frequent label among its points whose label is not
    `ignore_label` (ties to the smaller label); `ignore_label` where every point is ignored.

    voxel_of_point int64 [N] in [0, M), labels int64 [N]. One lexsort over (voxel, label) pairs:
    run lengths give the count of each pair, a second lexsort puts each voxel's largest count first.
    """
    out = np.full(num_voxels, ignore_label, dtype=np.int64)
    keep = labels != ignore_label
    vid, lab = voxel_of_point[keep], labels[keep]
    if vid.size == 0:
        return out
    order = np.lexsort((lab, vid))
    vid, lab = vid[order], lab[order]
    new_run = np.ones(vid.size, dtype=bool)
    new_run[1:] = (vid[1:] != vid[:-1]) | (lab[1:] != lab[:-1])
    run_start = np.flatnonzero(new_run)
    run_len = np.diff(np.append(run_start, vid.size))
    run_vid, run_lab = vid[run_start], lab[run_start]
    best = np.lexsort((run_lab, -run_len, run_vid))  # per voxel: largest count, then smallest label
    first = np.ones(best.size, dtype=bool)
    first[1:] = run_vid[best][1:] != run_vid[best][:-1]
    winners = best[first]
    out[run_vid[winners]] = run_lab[winners]
    return out


def _decode(keys, lo, extents, xyz, sizes, rows) -> np.ndarray:
    """int32 [M, D] voxel coordinates from their keys (or from the points when keys is None)."""
    if keys is None:
        return np.floor(xyz[rows] / sizes).astype(np.int32)
    out = np.empty((keys.size, len(extents)), dtype=np.int32)
    rest = keys.copy()
    for d in range(len(extents) - 1, -1, -1):
        rest, digit = np.divmod(rest, extents[d])
        out[:, d] = digit + int(lo[d])
    return out


def _sort_by_voxel(xyz, sizes, lo, extents) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Order points by voxel, ties by index. Returns (order [N], sorted keys [N] or None,
    voxel start offsets [M])."""
    n = xyz.shape[0]
    total = 1
    for e in extents:
        total *= e
    if total > 2**53:
        # A ravelled key would lose exactness or overflow: lexicographic sort of the columns.
        grid = np.floor(xyz / sizes).astype(np.int64)
        order = np.lexsort(tuple(grid[:, d] for d in range(grid.shape[1] - 1, -1, -1)))
        sorted_grid = grid[order]
        change = np.any(sorted_grid[1:] != sorted_grid[:-1], axis=1)
        return order, None, np.flatnonzero(np.concatenate(([True], change)))
    # Ravel in float64 (exact below 2**53), first axis slowest so keys sort lexicographically.
    key = np.zeros(n, dtype=np.float64)
    column = np.empty(n, dtype=np.float64)
    for d, extent in enumerate(extents):
        np.divide(xyz[:, d], sizes[d], out=column)
        np.floor(column, out=column)
        column -= lo[d]
        key *= extent
        key += column
    if total * n <= INT64_LIMIT:
        packed = key.astype(np.int64)
        packed *= n
        packed += np.arange(n, dtype=np.int64)
        packed.sort()  # one SIMD sort; the index in the low digits breaks ties by index
        sorted_key, order = np.divmod(packed, n)
    else:
        int_key = key.astype(np.int64)
        order = np.argsort(int_key, kind="stable")
        sorted_key = int_key[order]
    change = sorted_key[1:] != sorted_key[:-1]
    return order, sorted_key, np.flatnonzero(np.concatenate(([True], change)))
