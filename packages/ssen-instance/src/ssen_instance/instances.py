"""`Instances`: a set of (possibly overlapping) instance masks over the N points of one scene."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ssen_instance.errors import InstanceInputError


@dataclass
class Instances:
    """K instance masks over a scene of `num_points` points.

    masks:      list of K sorted, unique int64 point-index arrays (masks may overlap, as the
                ScanNet benchmark format allows).
    labels:     int64 [K] class of each mask; ScanNet training ids 0..19 in memory, NYU40 ids in
                the benchmark files (see `ssen_instance.export`).
    scores:     float64 [K] confidence of each mask.
    num_points: N, the number of vertices every mask indexes into.
    """

    masks: list[np.ndarray]
    labels: np.ndarray
    scores: np.ndarray
    num_points: int
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        self.masks = [np.asarray(m, dtype=np.int64).reshape(-1) for m in self.masks]
        k = len(self.masks)
        if self.labels.shape != (k,) or self.scores.shape != (k,):
            raise InstanceInputError(
                f"{k} masks need {k} labels and {k} scores, got {self.labels.size} and {self.scores.size}"
            )
        for i, m in enumerate(self.masks):
            if m.size and (m.min() < 0 or m.max() >= self.num_points):
                raise InstanceInputError(
                    f"mask {i} indexes points outside 0..{self.num_points - 1}"
                )

    def __len__(self) -> int:
        return len(self.masks)

    @classmethod
    def empty(cls, num_points: int) -> Instances:
        return cls([], np.zeros(0, np.int64), np.zeros(0), num_points)

    @classmethod
    def from_ids(
        cls, instance_ids: np.ndarray, labels: np.ndarray, scores: np.ndarray
    ) -> Instances:
        """From a dense map `instance_ids` [N] (-1 = none, else 0..K-1) and per-instance arrays."""
        instance_ids = np.asarray(instance_ids, dtype=np.int64)
        k = int(np.asarray(labels).size)
        order = np.argsort(instance_ids, kind="stable")
        bounds = np.searchsorted(instance_ids[order], np.arange(k + 1))
        masks = [np.sort(order[bounds[i] : bounds[i + 1]]) for i in range(k)]
        return cls(masks, labels, scores, int(instance_ids.size))

    def to_ids(self) -> np.ndarray:
        """Dense int64 [N] map: the highest-scoring mask covering each point, -1 for none."""
        ids = np.full(self.num_points, -1, dtype=np.int64)
        for i in np.argsort(self.scores, kind="stable"):  # best score written last wins
            ids[self.masks[i]] = i
        return ids
