"""End-to-end library calls behind the CLI: predict a scene file, evaluate scene files."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Literal

import numpy as np

from ssen_instance.errors import InstanceInputError
from ssen_instance.evaluate import InstanceMetrics, encode_gt_ids, evaluate_instances
from ssen_instance.export import to_nyu40, write_scannet_instances
from ssen_instance.grouping import GroupingConfig
from ssen_instance.inference import InstanceSegmenter, ScenePrediction
from ssen_instance.scenes import SsenScene, list_scene_files, read_ssen_scene, scene_name
from stseg_data.atomic import atomic_write
from stseg_data.io import read_scene
from stseg_data.labels import scannet20_to_nyu40

log = logging.getLogger(__name__)

# Where evaluation takes each scene's semantics from: the semantic network's pass ("predict"),
# the file's stored prediction column ("stored") or its ground-truth column ("gt"). "gt" isolates
# what the embeddings and the clustering lose from what the semantic network loses.
SemanticSource = Literal["predict", "stored", "gt"]
SEMANTIC_SOURCES: tuple[str, ...] = ("predict", "stored", "gt")


def scene_semantic(scene: SsenScene, source: SemanticSource) -> np.ndarray | None:
    """int64 [N] training ids (255 ignore) of `scene` from `source`; None for "predict" (the
    segmenter runs its semantic network)."""
    if source not in SEMANTIC_SOURCES:
        raise InstanceInputError(
            f"unknown semantic source {source!r}; choose one of {', '.join(SEMANTIC_SOURCES)}"
        )
    if source == "predict":
        return None
    return np.asarray(scene.predicted if source == "stored" else scene.semantic, np.int64)


def _check_aligned(pred: ScenePrediction, n: int, where: str) -> None:
    # F32: one prediction per input point, whatever happened in between.
    if pred.semantic.shape != (n,) or pred.instances.num_points != n:
        raise InstanceInputError(
            f"{where}: prediction covers {pred.instances.num_points} of {n} points"
        )


def predict_file(
    scene: str | os.PathLike[str],
    out: str | os.PathLike[str],
    segmenter: InstanceSegmenter,
    *,
    overwrite: bool = False,
) -> tuple[Path, ScenePrediction]:
    """Instances of one scene file (.ply, SSEN .pt, ...) written in the benchmark format to `out`."""
    path = Path(scene)
    name = scene_name(path)
    if not overwrite and (Path(out) / f"{name}.txt").exists():
        raise InstanceInputError(
            f"{Path(out) / (name + '.txt')}: already exists (pass --overwrite)"
        )
    cloud = read_scene(path)
    if len(cloud) == 0:
        raise InstanceInputError(f"{path}: 0 points")
    pred = segmenter.predict(cloud.xyz, cloud.rgb)
    _check_aligned(pred, len(cloud), str(path))
    tic = time.perf_counter()
    index = write_scannet_instances(out, name, to_nyu40(pred.instances), overwrite=True)
    pred.times.export = time.perf_counter() - tic
    return index, pred


def evaluate_path(
    data: str | os.PathLike[str],
    segmenter: InstanceSegmenter,
    *,
    out: str | os.PathLike[str] | None = None,
    stored_semantic: bool = False,
    semantic: SemanticSource | None = None,
    progress: bool = False,
) -> InstanceMetrics:
    """ScanNet instance AP over SSEN scene files (one file or a folder).

    semantic: where each scene's semantics come from (`SemanticSource`; default "predict", or
    "stored" when `stored_semantic`, which is kept as the older spelling of "stored").
    With `out`, writes `out/metrics.json` and the predictions in the benchmark format.
    `progress`: a bar with ETA over the scenes.
    """
    from tqdm import tqdm

    source: SemanticSource = semantic or ("stored" if stored_semantic else "predict")
    if stored_semantic and source != "stored":
        raise InstanceInputError(f"stored_semantic=True contradicts semantic={semantic!r}")
    pairs = []
    times = []
    files = list_scene_files(data)
    for path in tqdm(
        files, desc=f"evaluate ({source} semantics)", unit="scene", disable=not progress
    ):
        scene = read_ssen_scene(path)
        # the background head belongs to background removal: stored predictions get it, the
        # ground truth does not (so "gt" isolates the embeddings and the clustering)
        pred = segmenter.predict(
            scene.xyz, scene.rgb, scene_semantic(scene, source), background_head=source != "gt"
        )
        _check_aligned(pred, len(scene), str(path))
        instances = to_nyu40(pred.instances)
        if out is not None:
            tic = time.perf_counter()
            write_scannet_instances(Path(out) / "pred", scene.name, instances)
            pred.times.export = time.perf_counter() - tic
        gt = encode_gt_ids(scannet20_to_nyu40(scene.semantic), scene.instance)
        pairs.append((gt, instances))
        times.append(pred.times)
        log.info("%s: %d instances, %.1f s", scene.name, len(instances), pred.times.total)
    metrics = evaluate_instances(pairs)
    if out is not None:
        summary = metrics.to_dict()
        summary["seconds_per_scene"] = {
            stage: float(np.mean([getattr(t, stage) for t in times]))
            for stage in ("semantic", "embedding", "clustering", "export")
        }
        summary["semantic_source"] = source
        summary["clustering"] = {
            "strategy": segmenter.grouping.strategy,
            "score": segmenter.grouping.score,
            **segmenter.grouping.params.__dict__,
        }
        with atomic_write(Path(out) / "metrics.json", "w") as handle:
            json.dump(summary, handle, indent=2)
    return metrics


def make_segmenter(
    semantic_weights: str | os.PathLike[str] | None,
    instance_weights: str | os.PathLike[str],
    grouping: GroupingConfig | None = None,
    *,
    rotations: int = 1,
    device: str = "cpu",
) -> InstanceSegmenter:
    """Both networks from their checkpoints."""
    return InstanceSegmenter.from_checkpoints(
        semantic_weights, instance_weights, grouping, rotations=rotations, device=device
    )
