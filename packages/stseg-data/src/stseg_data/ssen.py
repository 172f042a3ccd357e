"""SSEN preprocessed scenes: `<scene>_semantic_segment.pt`, a float tensor [N, 9] =
xyz, rgb (0..255), semantic (training id, -1 ignore), instance (-1 none), predicted semantic.

torch is imported only inside these functions, and files are loaded only through
`stseg_data.torch_files.load_weights_only` (F27): a pickle with code in it is refused
(`UnsafeFileError`, "refused: not a safe .pt data file"), never executed. An [N, 8] tensor (no
prediction) is accepted.
"""

from __future__ import annotations

import os

import numpy as np

from stseg_data.errors import PointCloudReadError, StsegInputError
from stseg_data.labels import IGNORE_LABEL
from stseg_data.pointcloud import PointCloud


def read_ssen_pt(path: str | os.PathLike[str], *, drop_nonfinite: bool = False) -> PointCloud:
    """Read an SSEN `.pt` scene; semantic -1 -> 255, instance -1 kept as -1 (no instance)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is optional for stseg-data
        raise StsegInputError(
            f"{path}: reading .pt files needs torch (pip install torch)"
        ) from None
    from stseg_data.torch_files import load_weights_only

    tensor = load_weights_only(
        path, what=".pt data file", accepted="a .pt data file holds one plain tensor [N, 9]"
    )
    if not isinstance(tensor, torch.Tensor):
        raise PointCloudReadError(
            f"{path}: expected a tensor [N, 9], found {type(tensor).__name__}"
        )
    array = tensor.detach().to(torch.float64).numpy()
    if array.ndim != 2 or array.shape[1] not in (8, 9):
        raise PointCloudReadError(
            f"{path}: expected a tensor [N, 9] (or [N, 8]), got {list(array.shape)}"
        )
    if array.shape[0] == 0:
        raise PointCloudReadError(f"{path}: 0 points")
    xyz = array[:, :3]
    finite = np.isfinite(xyz).all(axis=1)
    if not finite.all() and not drop_nonfinite:
        bad = np.flatnonzero(~finite)
        raise PointCloudReadError(
            f"{path}: {bad.size} points with non-finite coordinates, first at row {int(bad[0])}"
        )
    rgb = array[:, 3:6]
    if not (np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 255):
        raise PointCloudReadError(f"{path}: rgb columns 3-5 must be finite and in [0, 255]")
    semantic, instance = array[:, 6], array[:, 7]
    for name, col in (("semantic", semantic), ("instance", instance)):
        if not (np.isfinite(col).all() and np.all(col == np.round(col))):
            raise PointCloudReadError(f"{path}: {name} column holds non-integer values")
    labels = semantic.astype(np.int64)
    labels[labels < 0] = IGNORE_LABEL
    cloud = PointCloud(
        xyz, (rgb / 255.0).astype(np.float32), labels, instance.astype(np.int64), str(path)
    )
    return cloud if finite.all() else cloud.subset(finite)


def write_ssen_pt(
    path: str | os.PathLike[str], cloud: PointCloud, *, overwrite: bool = True
) -> None:
    """Write a `PointCloud` as an SSEN [N, 9] float tensor (prediction column = semantic)."""
    import io

    import torch

    from stseg_data.atomic import atomic_write

    n = len(cloud)
    rgb = np.zeros((n, 3)) if cloud.rgb is None else cloud.rgb * 255.0
    semantic = np.full(n, -1.0) if cloud.labels is None else cloud.labels.astype(np.float64)
    semantic[semantic == IGNORE_LABEL] = -1
    instance = np.full(n, -1.0) if cloud.instances is None else cloud.instances.astype(np.float64)
    table = np.column_stack([cloud.xyz, rgb, semantic, instance, semantic]).astype(np.float32)
    buffer = io.BytesIO()
    torch.save(torch.from_numpy(table), buffer)
    with atomic_write(path, "wb", overwrite=overwrite) as handle:
        handle.write(buffer.getvalue())
