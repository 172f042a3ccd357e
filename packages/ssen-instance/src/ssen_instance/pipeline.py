"""End-to-end library calls behind the CLI: predict a scene file, evaluate scene files."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ssen_instance.errors import InstanceInputError, InstanceRuntimeError
from ssen_instance.evaluate import InstanceMetrics, encode_gt_ids, evaluate_instances
from ssen_instance.export import MASK_DIR, to_nyu40, write_scannet_instances
from ssen_instance.grouping import GroupingConfig
from ssen_instance.inference import InstanceSegmenter, ScenePrediction
from ssen_instance.scenes import SsenScene, list_scene_files, read_ssen_scene, scene_name
from stseg_data.atomic import atomic_write
from stseg_data.errors import StsegRuntimeError
from stseg_data.io import read_scene
from stseg_data.labels import scannet20_to_nyu40
from stseg_data.outputs import check_writable, describe_os_error, missing_folders, refuse_existing
from stseg_data.pointcloud import PointCloud

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


STAGE_PREFIX = ".ssen-partial-"


@contextlib.contextmanager
def staged_output(out: str | os.PathLike[str]) -> Iterator[Path]:
    """A private folder inside `out` to write into; its files move into `out` only at the end.

    On success every staged file replaces its counterpart in `out`, deepest first (benchmark mask
    files before the index naming them, `metrics.json` last), each by one rename. On any error the
    staged files are removed, and so is `out` (with the parents) when this call created it: a
    command that fails half-way, e.g. on a full disk, leaves neither partial files nor a new
    folder, and the files already in `out` are unchanged. A failed write is reported as one line
    naming `out` and the errno.
    """
    target = Path(out)
    created = missing_folders(target)
    target.mkdir(parents=True, exist_ok=True)
    stage = target / f"{STAGE_PREFIX}{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)  # left by a killed process that had this pid
    try:
        stage.mkdir()
        yield stage
        _publish(stage, target)
    except BaseException as error:
        shutil.rmtree(stage, ignore_errors=True)
        for folder in created:  # deepest first; a folder someone else filled meanwhile stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        cause = _write_failure(error, target)
        if cause is not None:
            kept = "nothing was written there" if created else "its files are unchanged"
            raise InstanceRuntimeError(
                f"{target}: could not write the output ({describe_os_error(cause)}); {kept}"
            ) from error
        raise
    shutil.rmtree(stage, ignore_errors=True)


def _write_failure(error: BaseException, target: Path) -> OSError | None:
    """The OSError behind `error` when it is a failed write into `target` (not, e.g., a scene
    file that could not be read): `atomic_write`'s error, or an OSError on a path in `target`."""
    if isinstance(error, StsegRuntimeError) and isinstance(error.__cause__, OSError):
        return error.__cause__
    if isinstance(error, OSError) and error.filename is not None:
        path = Path(os.fsdecode(error.filename)).absolute()
        if path.is_relative_to(target.absolute()):
            return error
    return None


def _publish(stage: Path, target: Path) -> None:
    files = [p for p in stage.rglob("*") if p.is_file()]
    for path in sorted(files, key=lambda p: (-len(p.relative_to(stage).parts), str(p))):
        final = target / path.relative_to(stage)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, final)


def benchmark_files(out: str | os.PathLike[str], scene: str) -> list[Path]:
    """The files of `scene` in the benchmark folder `out`: its index and its mask files."""
    folder = Path(out)
    own_mask = re.compile(re.escape(scene) + r"_\d+\.txt")
    masks = folder / MASK_DIR
    found = [p for p in masks.iterdir() if own_mask.fullmatch(p.name)] if masks.is_dir() else []
    index = folder / f"{scene}.txt"
    return ([index] if index.exists() else []) + sorted(found)


def drop_stale_masks(out: str | os.PathLike[str], scene: str, count: int) -> None:
    """Remove mask files of `scene` beyond the `count` its new index names (an overwritten
    prediction that found fewer instances than the old one)."""
    keep = {f"{scene}_{k}.txt" for k in range(count)}
    for path in benchmark_files(out, scene):
        if path.parent.name == MASK_DIR and path.name not in keep:
            path.unlink(missing_ok=True)


def prepare_predict(
    scene: str | os.PathLike[str], out: str | os.PathLike[str], *, overwrite: bool = False
) -> PointCloud:
    """Every check of `ssen-instance predict` before any model work: the scene file read and
    valid, no earlier prediction of this scene in `out` (its index or any of its mask files)
    unless `overwrite`, and `out` writable. Returns the scene's points."""
    path = Path(scene)
    existing = benchmark_files(out, scene_name(path))
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more of its files" if len(existing) > 1 else ""
        raise InstanceInputError(
            f"{existing[0]}: already exists{more} (pass --overwrite to replace them)"
        )
    cloud = read_scene(path)
    if len(cloud) == 0:
        raise InstanceInputError(f"{path}: 0 points")
    check_writable(out)
    return cloud


def predict_cloud(
    cloud: PointCloud, name: str, out: str | os.PathLike[str], segmenter: InstanceSegmenter
) -> tuple[Path, ScenePrediction]:
    """Instances of one checked scene (`prepare_predict`) written in the benchmark format."""
    pred = segmenter.predict(cloud.xyz, cloud.rgb)
    _check_aligned(pred, len(cloud), cloud.path or name)
    tic = time.perf_counter()
    instances = to_nyu40(pred.instances)
    with staged_output(out) as stage:
        write_scannet_instances(stage, name, instances)
    drop_stale_masks(out, name, len(instances))
    pred.times.export = time.perf_counter() - tic
    return Path(out) / f"{name}.txt", pred


def predict_file(
    scene: str | os.PathLike[str],
    out: str | os.PathLike[str],
    segmenter: InstanceSegmenter,
    *,
    overwrite: bool = False,
) -> tuple[Path, ScenePrediction]:
    """Instances of one scene file (.ply, SSEN .pt, ...) written in the benchmark format to `out`."""
    cloud = prepare_predict(scene, out, overwrite=overwrite)
    return predict_cloud(cloud, scene_name(scene), out, segmenter)


def check_scene_files(data: str | os.PathLike[str]) -> list[Path]:
    """The SSEN scene files of `data` (one file or a folder), each read and validated now, so a
    bad file (unreadable, not [N, 9], non-finite coordinates, label ids out of range, no points)
    is named before any model is loaded or any output written."""
    files = list_scene_files(data)
    for path in files:
        read_ssen_scene(path)
    return files


@dataclass(frozen=True)
class EvaluationPlan:
    """Checked inputs and output of an evaluation (`plan_evaluation`)."""

    files: list[Path]
    out: Path | None


def plan_evaluation(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    *,
    overwrite: bool = False,
) -> EvaluationPlan:
    """Every check of `ssen-instance eval` before any model work: the scene files valid, `out`
    not an existing non-empty folder (unless `overwrite`) and writable. Creates nothing."""
    if out is not None:
        refuse_existing(out, overwrite)
        if Path(out).exists() and not Path(out).is_dir():
            raise InstanceInputError(f"{out}: is a file; --out needs a folder")
    files = check_scene_files(data)
    if out is not None:
        check_writable(out)
    return EvaluationPlan(files, None if out is None else Path(out))


def evaluate_path(
    data: str | os.PathLike[str],
    segmenter: InstanceSegmenter,
    *,
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    stored_semantic: bool = False,
    semantic: SemanticSource | None = None,
    progress: bool = False,
) -> InstanceMetrics:
    """ScanNet instance AP over SSEN scene files (one file or a folder).

    semantic: where each scene's semantics come from (`SemanticSource`; default "predict", or
    "stored" when `stored_semantic`, which is kept as the older spelling of "stored").
    With `out`, writes `out/metrics.json` and the predictions in the benchmark format (`out/pred`);
    a non-empty `out` is refused unless `overwrite` (then the files written replace theirs).
    `progress`: a bar with ETA over the scenes.
    """
    plan = plan_evaluation(data, out, overwrite=overwrite)
    return run_evaluation(
        plan, segmenter, stored_semantic=stored_semantic, semantic=semantic, progress=progress
    )


def run_evaluation(
    plan: EvaluationPlan,
    segmenter: InstanceSegmenter,
    *,
    stored_semantic: bool = False,
    semantic: SemanticSource | None = None,
    progress: bool = False,
) -> InstanceMetrics:
    """`evaluate_path` on checked inputs (`plan_evaluation`); the output appears only complete."""
    source: SemanticSource = semantic or ("stored" if stored_semantic else "predict")
    if stored_semantic and source != "stored":
        raise InstanceInputError(f"stored_semantic=True contradicts semantic={semantic!r}")
    if plan.out is None:
        return _evaluate(plan.files, segmenter, source, None, progress)[0]
    with staged_output(plan.out) as stage:
        metrics, found = _evaluate(plan.files, segmenter, source, stage, progress)
    for name, count in found.items():
        drop_stale_masks(plan.out / "pred", name, count)
    return metrics


def _evaluate(
    files: list[Path],
    segmenter: InstanceSegmenter,
    source: SemanticSource,
    out: Path | None,
    progress: bool,
) -> tuple[InstanceMetrics, dict[str, int]]:
    """The metrics, and how many instances each scene got (its number of mask files)."""
    from tqdm import tqdm

    pairs = []
    times = []
    found: dict[str, int] = {}
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
            write_scannet_instances(out / "pred", scene.name, instances)
            pred.times.export = time.perf_counter() - tic
        gt = encode_gt_ids(scannet20_to_nyu40(scene.semantic), scene.instance)
        pairs.append((gt, instances))
        found[scene.name] = len(instances)
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
        with atomic_write(out / "metrics.json", "w") as handle:
            json.dump(summary, handle, indent=2)
    return metrics, found


def make_segmenter(
    semantic_weights: str | os.PathLike[str] | None,
    instance_weights: str | os.PathLike[str],
    grouping: GroupingConfig | None = None,
    *,
    rotations: int = 1,
    device: str = "cpu",
    precision: str = "fp32",
) -> InstanceSegmenter:
    """Both networks from their checkpoints, run in `precision` (fp32, or bf16 / fp16 autocast)."""
    return InstanceSegmenter.from_checkpoints(
        semantic_weights, instance_weights, grouping, rotations=rotations, device=device,
        precision=precision,
    )  # fmt: skip
