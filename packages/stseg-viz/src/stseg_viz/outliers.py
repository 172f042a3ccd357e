"""Far outliers: a few points so far from the scene that a picture framed on all points is empty.

One stray point at 1e12 (a sensor glitch, a bad transform) makes every picture fit a 1e12-wide
box, and the room shrinks to a single pixel. `find_outliers` finds such points so the pictures can
be framed on the scene's bulk instead, with a warning naming how many points fell off.

The rule, per axis: take the 1st and 99th percentiles of the coordinates (the "bulk box") and
the largest of the three axes' inter-percentile extents (the "scale"; one scale for all axes, so a
flat scene, whose height extent is near zero, does not flag points a few centimetres above the
floor). A point is an outlier when, on any axis, it lies more than `REACH` x scale below the 1st
or above the 99th percentile. A whole scene does not trip this: only its outermost 1 % per side
lie outside the percentiles at all, and they would have to lie three scene widths beyond the rest.
With a scale of zero (nearly every point at one spot) nothing is an outlier.

Cost: about 0.1 s per million points (three per-column percentiles).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Percentiles bounding the bulk of the points, per axis.
BULK_PERCENTILES = (1.0, 99.0)
#: How many scales beyond the bulk box a point must lie to be an outlier.
REACH = 3.0


@dataclass(frozen=True)
class Bulk:
    """`outliers` bool [N] (True = far outside), `low` / `high` float [3]: the bounding box of the
    remaining points (all points when there are no outliers)."""

    outliers: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def count(self) -> int:
        return int(self.outliers.sum())

    def describe(self) -> str:
        """ "x -1.2..4.5, y 0..3, z 0..2.8": the bulk's bounds, for a one-line warning."""
        return ", ".join(
            f"{axis} {lo:.4g}..{hi:.4g}" for axis, lo, hi in zip("xyz", self.low, self.high)
        )


def find_outliers(
    xyz: np.ndarray, *, percentiles: tuple[float, float] = BULK_PERCENTILES, reach: float = REACH
) -> Bulk:
    """The far outliers of points xyz [N, 3] (N >= 1) by the rule in the module docstring."""
    # Contiguous columns: percentiles, masks and bounds are several times faster than on [N, 3].
    columns = np.ascontiguousarray(np.asarray(xyz, dtype=np.float64).T)
    lower, upper = np.array([np.percentile(c, percentiles) for c in columns]).T  # linear
    margin = reach * float((upper - lower).max())
    outliers = np.zeros(columns.shape[1], dtype=bool)
    for column, low, high in zip(columns, lower, upper):
        outliers |= (column < low - margin) | (column > high + margin)
    if margin <= 0 or outliers.all():  # all points at one spot; or too few for percentiles
        outliers[:] = False
    inside = columns[:, ~outliers] if outliers.any() else columns  # no copy in the usual case
    return Bulk(outliers, inside.min(axis=1), inside.max(axis=1))


def warn_outliers(bulk: Bulk, total: int, where: str, consequence: str) -> None:
    """Log the one-line warning about `bulk`'s outliers (nothing when there are none)."""
    if bulk.count:
        log.warning(
            "%s: %s of %s points lie far outside the scene's bulk (%s); %s",
            where, f"{bulk.count:,}", f"{total:,}", bulk.describe(), consequence,
        )  # fmt: skip


def bulk_of(xyz: np.ndarray, where: str, consequence: str) -> np.ndarray:
    """Indices of the points to frame a picture on (all but the far outliers), warning if any."""
    bulk = find_outliers(xyz)
    warn_outliers(bulk, len(xyz), where, consequence)
    return np.flatnonzero(~bulk.outliers)
