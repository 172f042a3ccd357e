"""Synthetic ScanNet v2 scans, written in the real raw layout so the real reader loads them:

OUT/scans/<scene>/<scene>_vh_clean_2.ply                 x y z red green blue alpha + faces
OUT/scans/<scene>/<scene>_vh_clean_2.labels.ply          same vertices, ushort NYU40 `label`
OUT/scans/<scene>/<scene>_vh_clean_2.0.010000.segs.json  {"segIndices": [...]}
OUT/scans/<scene>/<scene>.aggregation.json               {"segGroups": [{objectId, label, segments}]}
OUT/scans/<scene>/<scene>.txt                            axisAlignment, sceneType
OUT/scannetv2-labels.combined.tsv                        raw category -> nyu40id (real columns)
OUT/scannetv2_train.txt, OUT/scannetv2_val.txt           scene names
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from stseg_data.atomic import atomic_write
from stseg_data.labels import NYU40_CLASS_NAMES
from stseg_data.ply import write_ply
from stseg_data.synth_mesh import MeshBuilder
from stseg_data.synth_room import EXTRAS, ROOM_TYPES, Room

TSV_COLUMNS = ("id", "raw_category", "category", "count", "nyu40id", "eigen13id", "nyuClass",
               "nyu40class", "eigen13class", "ModelNet40", "ModelNet10", "ShapeNetCore55",
               "synsetoffset", "wnsynsetid", "wnsynsetkey", "mpcat40", "mpcat40index")  # fmt: skip
# raw categories used by the generator -> nyu40 id
RAW_CATEGORIES = {"wall": 1, "floor": 2, "cabinet": 3, "bed": 4, "chair": 5, "sofa": 6, "table": 7,
                  "door": 8, "window": 9, "bookshelf": 10, "picture": 11, "counter": 12, "desk": 14,
                  "curtain": 16, "ceiling": 22, "refrigerator": 24, "shower curtain": 28, "box": 29,
                  "toilet": 33, "sink": 34, "bathtub": 36, "otherfurniture": 39, "otherprop": 40}  # fmt: skip
SCENE_TYPES = {"bedroom": "Bedroom / Hotel", "living": "Living room / Lounge", "kitchen": "Kitchen",
               "bathroom": "Bathroom", "office": "Office"}  # fmt: skip


def scene_name(index: int) -> str:
    return f"scene{index:04d}_00"


def generate_room(rng: np.random.Generator, index: int, spacing: float = 0.035):
    """Arrays of one synthetic room (see `MeshBuilder.arrays`) plus `names` {instance: raw category}."""
    kinds = list(ROOM_TYPES)
    kind = kinds[index % len(kinds)]
    objects = ROOM_TYPES[kind] + list(rng.choice(EXTRAS, size=3, replace=False))
    room = Room(rng, MeshBuilder(rng, spacing=spacing), kind)
    room.build(objects)
    arrays = room.b.arrays()
    arrays["xyz"] += np.array([rng.uniform(0.2, 1.5), rng.uniform(0.2, 1.5), 0.0], dtype=np.float32)
    return arrays, room.names, kind


def write_scannet_scene(root: Path, index: int, seed: int, spacing: float = 0.035) -> str:
    """Generate and write one scene under root/scans; returns its name."""
    rng = np.random.default_rng([seed, index, 1])
    arrays, names, kind = generate_room(rng, index, spacing)
    scene = scene_name(index)
    folder = root / "scans" / scene
    n = len(arrays["xyz"])
    alpha = np.full(n, 255, dtype=np.uint8)
    write_ply(folder / f"{scene}_vh_clean_2.ply", arrays["xyz"], arrays["rgb"], {"alpha": alpha},
              faces=arrays["faces"])  # fmt: skip
    label = arrays["label"].astype(np.uint16)
    write_ply(folder / f"{scene}_vh_clean_2.labels.ply", arrays["xyz"], _label_colors(label),
              {"alpha": alpha, "label": label}, faces=arrays["faces"])  # fmt: skip
    # segment ids are vertex ids (as ScanNet's segmentator): the first vertex of each segment
    _, first, seg = np.unique(arrays["segment"], return_index=True, return_inverse=True)
    seg_indices = first[seg]
    segs_name = f"{scene}_vh_clean_2.0.010000.segs.json"
    _write_json(folder / segs_name, {"params": {"kThresh": "0.0001", "segMinVerts": "20"},
                                     "sceneId": scene, "segIndices": seg_indices.tolist()})  # fmt: skip
    groups = []
    for object_id, inst in enumerate(sorted(set(np.unique(arrays["instance"]).tolist()))):
        segments = np.unique(seg_indices[arrays["instance"] == inst]).tolist()
        groups.append({"id": object_id, "objectId": object_id, "segments": segments,
                       "label": _raw_name(names[inst], arrays["label"][arrays["instance"] == inst][0])})  # fmt: skip
    _write_json(folder / f"{scene}.aggregation.json", {"sceneId": f"scannet.{scene}", "appId": "stseg.synth.v1",
                "segGroups": groups, "segmentsFile": f"scannet.{segs_name}"})  # fmt: skip
    with atomic_write(folder / f"{scene}.txt", "w") as handle:
        handle.write("axisAlignment = 1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n")
        handle.write(
            f"numVertices = {n}\nnumFaces = {len(arrays['faces'])}\nsceneType = {SCENE_TYPES[kind]}\n"
        )
    return scene


def _raw_name(name: str, nyu40: int) -> str:
    if name == "box":  # clutter: box or otherprop, decided per object
        return "box" if nyu40 == 29 else "otherprop"
    return name


def _label_colors(label: np.ndarray) -> np.ndarray:
    """A fixed colour per NYU40 id (ScanNet's labels.ply colours vertices by class)."""
    palette = np.random.default_rng(40).integers(0, 256, size=(41, 3)).astype(np.uint8)
    palette[0] = 0
    return palette[np.minimum(label, 40)]


def _write_json(path: Path, payload: dict) -> None:
    with atomic_write(path, "w") as handle:
        json.dump(payload, handle)


def write_label_tsv(root: Path) -> None:
    """`scannetv2-labels.combined.tsv` with the real header and one row per raw category used."""
    rows = [list(TSV_COLUMNS)]
    for k, (raw, nyu40) in enumerate(RAW_CATEGORIES.items(), start=1):
        nyu_name = NYU40_CLASS_NAMES[nyu40 - 1]
        rows.append([str(k), raw, raw, "100", str(nyu40), "", nyu_name, nyu_name] + [""] * 9)
    with atomic_write(root / "scannetv2-labels.combined.tsv", "w") as handle:
        csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(rows)


def write_splits(root: Path, scenes: list[str], prefix: str = "scannetv2") -> None:
    """Train/val split files: one scene in five is validation (indices 0, 6, 12, 18, 24, 25, ...),
    chosen so that the validation rooms cycle through the five room types (index % 5)."""
    val = [s for i, s in enumerate(scenes) if i % 5 == (i // 5) % 5]
    train = [s for s in scenes if s not in val] or scenes
    for name, items in (("train", train), ("val", val)):
        with atomic_write(root / f"{prefix}_{name}.txt", "w") as handle:
            handle.write("".join(f"{s}\n" for s in items))
