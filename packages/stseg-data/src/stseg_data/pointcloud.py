"""`PointCloud`: the in-memory scene every reader returns and every pipeline consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stseg_data.errors import StsegInputError


@dataclass
class PointCloud:
    """One scene (or one frame) of points.

    xyz:       float64 [N, 3] coordinates (metres for indoor data, centimetres for Synthia4D).
    rgb:       float32 [N, 3] colours in [0, 1], or None when the file has no colour.
    labels:    int64 [N] semantic labels (training ids, 255 = ignore), or None.
    instances: int64 [N] instance ids (0 or -1 = no instance), or None.
    path:      the file it came from, for messages.
    """

    xyz: np.ndarray
    rgb: np.ndarray | None = None
    labels: np.ndarray | None = None
    instances: np.ndarray | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        self.xyz = np.asarray(self.xyz, dtype=np.float64)
        where = self.path or "<array>"
        if self.xyz.ndim != 2 or self.xyz.shape[1] != 3:
            raise StsegInputError(f"{where}: xyz must have shape [N, 3], got {self.xyz.shape}")
        n = self.xyz.shape[0]
        if self.rgb is not None:
            self.rgb = np.asarray(self.rgb, dtype=np.float32)
            if self.rgb.shape != (n, 3):
                raise StsegInputError(f"{where}: rgb has shape {self.rgb.shape}, expected ({n}, 3)")
        for name in ("labels", "instances"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value)
                if value.shape != (n,):
                    raise StsegInputError(
                        f"{where}: {name} has shape {value.shape}, expected ({n},) to match xyz"
                    )
                setattr(self, name, value.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def subset(self, mask_or_index: np.ndarray) -> PointCloud:
        """The points selected by a boolean mask or an index array, all fields kept aligned."""
        return PointCloud(
            xyz=self.xyz[mask_or_index],
            rgb=None if self.rgb is None else self.rgb[mask_or_index],
            labels=None if self.labels is None else self.labels[mask_or_index],
            instances=None if self.instances is None else self.instances[mask_or_index],
            path=self.path,
        )
