"""`read_scene`: one entry point for every supported scene file, dispatched by extension.

- `.ply`  generic or preprocessed PLY (`ply.read_ply`; labels/instances kept as stored)
- `.pt`   SSEN `N x 9` tensor (xyz, rgb 0-255, semantic, instance, predicted), torch imported lazily
- `.npz`  arrays `xyz`|`coord`, optional `rgb`|`color`, `label`|`segment`, `instance`
- `.npy`  float array [N, 3 | 6 | 7 | 8]: xyz, rgb in [0, 1], label, instance
- `.txt`  S3DIS-style lines `x y z r g b` (colour 0-255)
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stseg_data.errors import PointCloudReadError
from stseg_data.ply import read_ply, vertex_to_pointcloud
from stseg_data.pointcloud import PointCloud

SUPPORTED_SUFFIXES = (".ply", ".pt", ".npz", ".npy", ".txt")


def read_scene(path: str | os.PathLike[str], *, drop_nonfinite: bool = False) -> PointCloud:
    """Read any supported scene file as a `PointCloud` (see the module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise PointCloudReadError(f"{path}: no such file")
    if suffix == ".ply":
        return read_ply(path, drop_nonfinite=drop_nonfinite)
    if suffix == ".pt":
        from stseg_data.ssen import read_ssen_pt

        return read_ssen_pt(path, drop_nonfinite=drop_nonfinite)
    if suffix == ".txt":
        from stseg_data.s3dis import read_s3dis_txt

        xyz, rgb = read_s3dis_txt(path)
        return _finish({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "red": rgb[:, 0],
                        "green": rgb[:, 1], "blue": rgb[:, 2]}, path, drop_nonfinite)  # fmt: skip
    if suffix in (".npy", ".npz"):
        return _read_numpy(path, drop_nonfinite)
    raise PointCloudReadError(
        f"{path}: unsupported file type {suffix!r}; supported: {', '.join(SUPPORTED_SUFFIXES)}"
    )


def list_scene_files(
    folder: str | os.PathLike[str], suffixes: tuple[str, ...] = (".ply",)
) -> list[Path]:
    """Sorted scene files (by suffix, recursively) of a generic folder; none found is an error."""
    root = Path(folder)
    if not root.is_dir():
        raise PointCloudReadError(f"{root}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise PointCloudReadError(f"{root}: no scene files with suffix {', '.join(suffixes)}")
    return files


def _finish(columns: dict[str, np.ndarray], path: Path, drop_nonfinite: bool) -> PointCloud:
    return vertex_to_pointcloud(columns, str(path), drop_nonfinite=drop_nonfinite)


def _load_numpy(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise PointCloudReadError(f"{path}: cannot read numpy file ({error})") from None


def _read_numpy(path: Path, drop_nonfinite: bool) -> PointCloud:
    loaded = _load_numpy(path)
    if isinstance(loaded, np.ndarray):
        if loaded.ndim != 2 or loaded.shape[1] not in (3, 6, 7, 8):
            raise PointCloudReadError(
                f"{path}: expected an array [N, 3|6|7|8] (xyz, rgb, label, instance), got {loaded.shape}"
            )
        names = ["x", "y", "z", "red", "green", "blue", "label", "instance"][: loaded.shape[1]]
        columns = {name: loaded[:, i] for i, name in enumerate(names)}
        return _finish(columns, path, drop_nonfinite)
    with loaded:
        keys = set(loaded.files)
        xyz_key = next((k for k in ("xyz", "coord", "points") if k in keys), None)
        if xyz_key is None:
            raise PointCloudReadError(
                f"{path}: no coordinates; found arrays {sorted(keys)}, required one of xyz/coord/points"
            )
        xyz = np.asarray(loaded[xyz_key])
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise PointCloudReadError(f"{path}: '{xyz_key}' has shape {xyz.shape}, expected [N, 3]")
        columns = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}
        rgb_key = next((k for k in ("rgb", "color", "colors") if k in keys), None)
        if rgb_key is not None:
            rgb = np.asarray(loaded[rgb_key])
            if rgb.shape != xyz.shape:
                raise PointCloudReadError(
                    f"{path}: '{rgb_key}' has shape {rgb.shape}, expected {xyz.shape} like '{xyz_key}'"
                )
            columns.update(red=rgb[:, 0], green=rgb[:, 1], blue=rgb[:, 2])
        for key, name in (("label", "label"), ("segment", "label"), ("instance", "instance")):
            if key in keys and name not in columns:
                values = np.asarray(loaded[key]).reshape(-1)
                if values.shape[0] != xyz.shape[0]:
                    raise PointCloudReadError(
                        f"{path}: '{key}' has {values.shape[0]} entries but '{xyz_key}' has "
                        f"{xyz.shape[0]} points"
                    )
                columns[name] = values
    return _finish(columns, path, drop_nonfinite)
