"""SSEN's `N x 9` scene files: reading them, and making them from ScanNet raw scans.

A scene file `<scene>_semantic_segment.pt` is a float32 tensor [N, 9]: xyz, rgb (0..255),
semantic (training id 0..19, -1 ignore), instance (0 for wall / floor / unannotated, else 1..K),
predicted semantic (from a semantic checkpoint; the ground truth when none was given).
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ssen_instance.errors import SceneFileError
from stseg_data.atomic import atomic_write
from stseg_data.labels import IGNORE_LABEL, SCANNET_INSTANCE_CLASS_IDS
from stseg_data.scannet import list_scenes, read_scannet_scene
from stseg_data.ssen import read_ssen_pt

log = logging.getLogger(__name__)
SUFFIX = "_semantic_segment.pt"


@dataclass
class SsenScene:
    """xyz float64 [N,3]; rgb float32 [N,3] in [0,1]; semantic, predicted int64 [N] training ids
    (255 ignore); instance int64 [N] (0 none, else 1..K); name."""

    xyz: np.ndarray
    rgb: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    predicted: np.ndarray
    name: str

    def __len__(self) -> int:
        return len(self.xyz)


def scene_name(path: str | os.PathLike[str]) -> str:
    name = Path(path).name
    return name[: -len(SUFFIX)] if name.endswith(SUFFIX) else Path(name).stem


def instance_ids(semantic: np.ndarray, raw_instance: np.ndarray) -> np.ndarray:
    """SSEN instance ids [N]: 0 unless the point's class is an instance class and it belongs to
    an annotated object; objects renumbered 1..K in order of their raw id."""
    semantic = np.asarray(semantic, np.int64)
    raw = np.asarray(raw_instance, np.int64)
    keep = np.isin(semantic, SCANNET_INSTANCE_CLASS_IDS) & (raw > 0)
    out = np.zeros(raw.shape, np.int64)
    if keep.any():
        _, compact = np.unique(raw[keep], return_inverse=True)
        out[keep] = compact.reshape(-1) + 1
    return out


def read_ssen_scene(path: str | os.PathLike[str]) -> SsenScene:
    """Read and validate an SSEN scene file (an [N, 8] file has no prediction: semantic is used)."""
    cloud = read_ssen_pt(path)  # validates shape, finiteness, colour range, integer labels
    table = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    semantic = np.asarray(cloud.labels, np.int64)
    predicted = semantic.copy()
    if table.shape[1] == 9:
        column = table[:, 8].double().numpy()
        if not (np.isfinite(column).all() and np.all(column == np.round(column))):
            raise SceneFileError(f"{path}: predicted semantic column 8 holds non-integer values")
        predicted = column.astype(np.int64)
        predicted[predicted < 0] = IGNORE_LABEL
    for what, values in (("semantic", semantic), ("predicted semantic", predicted)):
        bad = (values != IGNORE_LABEL) & ((values < 0) | (values >= 20))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SceneFileError(
                f"{path}: {what} id {int(values[row])} at row {row} is outside 0..19 (and not -1)"
            )
    instance = np.maximum(np.asarray(cloud.instances, np.int64), 0)
    assert cloud.rgb is not None
    return SsenScene(cloud.xyz, cloud.rgb, semantic, instance, predicted, scene_name(path))


def write_ssen_scene(
    path: str | os.PathLike[str], scene: SsenScene, *, overwrite: bool = True
) -> None:
    """Write an [N, 9] scene file atomically."""

    def signed(labels: np.ndarray) -> np.ndarray:
        out = labels.astype(np.float64)
        out[labels == IGNORE_LABEL] = -1
        return out

    table = np.column_stack(
        [
            scene.xyz,
            scene.rgb * 255.0,
            signed(scene.semantic),
            scene.instance,
            signed(scene.predicted),
        ]
    ).astype(np.float32)
    buffer = io.BytesIO()
    torch.save(torch.from_numpy(table), buffer)
    with atomic_write(path, "wb", overwrite=overwrite) as handle:
        handle.write(buffer.getvalue())


def list_scene_files(path: str | os.PathLike[str]) -> list[Path]:
    """One scene file, or every `*_semantic_segment.pt` (else `*.pt`) in a folder, sorted."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise SceneFileError(f"{root}: no such file or folder")
    files = sorted(root.glob(f"*{SUFFIX}")) or sorted(root.glob("*.pt"))
    if not files:
        raise SceneFileError(f"{root}: no SSEN scene files (*{SUFFIX})")
    return files


def preprocess_scannet(
    raw: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    semantic_weights: str | os.PathLike[str] | None = None,
    subset: str = "scans",
    rotations: int = 1,
    progress: bool = False,
    overwrite: bool = False,
) -> dict:
    """ScanNet raw scans (`raw/<subset>/<scene>/...`) -> `out/<scene>_semantic_segment.pt`.

    The prediction column comes from `semantic_weights` (a stseg semantic checkpoint) when given,
    else it is the ground truth (the summary says which). `progress`: a bar with ETA.
    A non-empty `out` is refused unless `overwrite` (then the files made now replace theirs;
    others stay). Before any scene is read: the raw folder is listed, `out` checked writable and
    the checkpoint loaded. The files are built in a private folder inside `out` and appear only
    when every scene is done, so a scene that fails to read (named in the error) or a full disk
    leaves `out` as it was.
    """
    from tqdm import tqdm

    from ssen_instance.pipeline import staged_output
    from stseg_data.outputs import check_writable, refuse_existing

    refuse_existing(out, overwrite)
    folders = list_scenes(raw, subset)
    check_writable(out)
    segmenter = None
    if semantic_weights is not None:
        from stseg_models.checkpoint import read_checkpoint

        ckpt = read_checkpoint(semantic_weights)
        if ckpt.inference is None:
            raise SceneFileError(
                f"{semantic_weights}: needs an stseg checkpoint with inference settings"
            )
        model, _ = ckpt.build(strict=True)
        segmenter = (model, ckpt.inference)
    out_dir = Path(out)
    written = []
    with staged_output(out_dir) as stage:
        for folder in tqdm(folders, desc="preprocess ssen", unit="scene", disable=not progress):
            scene = _ssen_scene(folder, segmenter, rotations)
            write_ssen_scene(stage / f"{folder.name}{SUFFIX}", scene)
            written.append(folder.name)
            log.info(
                "made %s (%d points, %d instances)",
                folder.name,
                len(scene),
                int(scene.instance.max()),
            )
    return {
        "scenes": written,
        "out": str(out_dir),
        "prediction": "semantic checkpoint" if segmenter is not None else "ground truth",
    }


def _ssen_scene(folder: Path, segmenter: tuple | None, rotations: int) -> SsenScene:
    """One raw ScanNet scan as an SSEN scene (prediction column from `segmenter`, else the truth)."""
    cloud = read_scannet_scene(folder, require_labels=True)
    assert cloud.labels is not None and cloud.rgb is not None
    raw_instance = (
        cloud.instances if cloud.instances is not None else np.zeros(len(cloud), np.int64)
    )
    if segmenter is not None:
        from ssen_instance.inference import semantic_pass

        predicted = semantic_pass(
            segmenter[0], segmenter[1], cloud.xyz, cloud.rgb, rotations=rotations
        )
    else:
        predicted = cloud.labels
    return SsenScene(
        cloud.xyz,
        cloud.rgb,
        cloud.labels,
        instance_ids(cloud.labels, raw_instance),
        predicted,
        folder.name,
    )
