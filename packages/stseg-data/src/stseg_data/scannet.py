"""ScanNet v2 raw scans: mesh + per-vertex NYU40 labels + over-segmentation + aggregation.

`read_scannet_scene(scans/<scene>)` returns xyz, rgb, 20-class semantic labels (from
`<scene>_vh_clean_2.labels.ply`, NYU40 mapped, unknown ids -> 255 and counted) and instance ids
(`objectId + 1` of the aggregation group owning each vertex's segment, 0 = none). Vertex counts of
the mesh, labels file and segmentation must agree (F15); aggregation segments must exist in the
segmentation.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from stseg_data.errors import DatasetFormatError
from stseg_data.labels import nyu40_to_scannet20
from stseg_data.ply import read_ply
from stseg_data.pointcloud import PointCloud

MESH_SUFFIX = "_vh_clean_2.ply"
LABELS_SUFFIX = "_vh_clean_2.labels.ply"
SEGS_SUFFIX = "_vh_clean_2.0.010000.segs.json"
AGGREGATION_SUFFIX = ".aggregation.json"


def scene_files(scene_dir: Path) -> dict[str, Path]:
    scene = scene_dir.name
    return {"mesh": scene_dir / f"{scene}{MESH_SUFFIX}", "labels": scene_dir / f"{scene}{LABELS_SUFFIX}",
            "segs": scene_dir / f"{scene}{SEGS_SUFFIX}", "aggregation": scene_dir / f"{scene}{AGGREGATION_SUFFIX}"}  # fmt: skip


def list_scenes(root: str | os.PathLike[str], subset: str = "scans") -> list[Path]:
    """Scene folders under root/subset that contain a `<scene>_vh_clean_2.ply`, sorted."""
    folder = Path(root) / subset
    scenes = sorted(
        p.parent for p in folder.glob(f"*/*{MESH_SUFFIX}") if p.name == p.parent.name + MESH_SUFFIX
    )
    if not scenes:
        raise DatasetFormatError(
            f"{folder}: no ScanNet scenes (expected <scene>/<scene>{MESH_SUFFIX})"
        )
    return scenes


def read_label_tsv(
    path: str | os.PathLike[str], key: str = "raw_category", value: str = "nyu40id"
) -> dict[str, int]:
    """`scannetv2-labels.combined.tsv` -> {raw_category: nyu40id} (or other columns)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            fields = reader.fieldnames or []
            if key not in fields or value not in fields:
                raise DatasetFormatError(
                    f"{path}: missing columns {key!r}/{value!r}; found {fields}"
                )
            mapping = {}
            for lineno, row in enumerate(reader, start=2):
                try:
                    mapping[row[key]] = int(row[value])
                except (TypeError, ValueError):
                    raise DatasetFormatError(
                        f"{path}: line {lineno}: {value} {row.get(value)!r} is not an integer"
                    ) from None
            return mapping
    except OSError as error:
        raise DatasetFormatError(
            f"{path}: cannot read label table ({error.strerror or error})"
        ) from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DatasetFormatError(f"{path}: cannot read ({error.strerror or error})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetFormatError(f"{path}: not valid JSON ({error})") from None


def read_instances(segs: Path, aggregation: Path, n: int) -> np.ndarray:
    """Per-vertex instance ids int64 [n] (objectId + 1, 0 = unannotated)."""
    seg_data = _read_json(segs)
    if "segIndices" not in seg_data:
        raise DatasetFormatError(f"{segs}: no 'segIndices'; found keys {sorted(seg_data)}")
    seg = np.asarray(seg_data["segIndices"])
    if seg.ndim != 1 or (seg.size and seg.dtype.kind not in "iu"):
        raise DatasetFormatError(f"{segs}: 'segIndices' must be a list of integers")
    if len(seg) != n:
        raise DatasetFormatError(
            f"{segs} has {len(seg)} segment indices but the mesh has {n} vertices"
        )
    groups = _read_json(aggregation).get("segGroups")
    if not isinstance(groups, list):
        raise DatasetFormatError(f"{aggregation}: no 'segGroups' list")
    known = np.unique(seg)
    instances = np.zeros(n, dtype=np.int64)
    for k, group in enumerate(groups):
        try:
            object_id, segments = (
                int(group["objectId"]),
                np.asarray(group["segments"], dtype=np.int64),
            )
        except (KeyError, TypeError, ValueError):
            raise DatasetFormatError(
                f"{aggregation}: segGroups[{k}] lacks objectId/segments"
            ) from None
        missing = np.setdiff1d(segments, known)
        if missing.size:
            raise DatasetFormatError(
                f"{aggregation}: segGroups[{k}] (objectId {object_id}, {group.get('label')!r}) refers to "
                f"{missing.size} segment ids missing from {segs.name}, e.g. {missing[:5].tolist()}"
            )
        instances[np.isin(seg, segments)] = object_id + 1
    return instances


def read_scannet_scene(
    scene_dir: str | os.PathLike[str], *, require_labels: bool = False, stats: dict | None = None
) -> PointCloud:
    """Read one raw scene folder. Labels/instances are None when their files are absent (test
    scans), unless `require_labels` (training) makes that an error (F6). `stats` receives
    'unknown_labels': the count of labels outside the 20-class map other than 0 (F14)."""
    scene_dir = Path(scene_dir)
    files = scene_files(scene_dir)
    if not files["mesh"].is_file():
        raise DatasetFormatError(f"{scene_dir}: missing mesh {files['mesh'].name}")
    mesh = read_ply(files["mesh"])
    n = len(mesh)
    labels = instances = None
    if files["labels"].is_file():
        raw = read_ply(files["labels"])
        if len(raw) != n:
            raise DatasetFormatError(
                f"{files['labels']} has {len(raw)} vertices but {files['mesh']} has {n}: files do not belong together"
            )
        if raw.labels is None:
            raise DatasetFormatError(f"{files['labels']}: no 'label' vertex field")
        labels = nyu40_to_scannet20(raw.labels)
        if stats is not None:
            stats["unknown_labels"] = int(((raw.labels > 40) | (raw.labels < 0)).sum())
    elif require_labels:
        raise DatasetFormatError(
            f"{scene_dir}: missing {files['labels'].name} (needed for training)"
        )
    if files["segs"].is_file() and files["aggregation"].is_file():
        instances = read_instances(files["segs"], files["aggregation"], n)
    return PointCloud(mesh.xyz, mesh.rgb, labels, instances, str(scene_dir))
