"""`ssen-instance demo`: SSEN instance segmentation from nothing, in one command.

Stages, in order, each under the demo folder DIR:

1. data        synthetic ScanNet rooms (`stseg-train synthetic`'s generator, its 100 rooms and
               split files) in DIR/data/raw, preprocessed for the semantic network in
               DIR/data/prepared;
2. semantic    the semantic main job (`stseg-train synthetic`) in DIR/semantic, unless
               `--semantic-weights` names a checkpoint to reuse;
3. preprocess  SSEN `N x 9` scene files (predicted-semantic column from that checkpoint) in
               DIR/scenes/{train,val}, split by the generator's scannetv2_val.txt;
4. instance    the embedding network (`ssen-instance train --recipe synthetic-cpu`) in DIR/instance;
5. evaluate    ScanNet AP / AP50 / AP25 on the held-out rooms with the semantic network's
               predictions (DIR/eval/predicted) and with the ground-truth semantics (DIR/eval/gt):
               the second isolates what the embeddings and the clustering lose;
6. example     one held-out room's instances in the ScanNet benchmark format, with a PNG and an
               HTML view coloured by instance (`ssen_instance.demo_view`), in DIR/example;

then DIR/metrics.json. A stage is recorded in DIR/stages.json (atomically) only once its outputs are
complete, so `--resume` skips the recorded stages and redoes or continues the interrupted one: the
two trainings continue from their newest checkpoint (stseg-train's resume), the others start again
(their outputs are written atomically, or built in a `.partial` folder renamed at the end).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssen_instance.demo_settings import DemoSettings, open_demo_dir
from ssen_instance.errors import InstanceInputError
from stseg_data.atomic import atomic_write

if TYPE_CHECKING:
    from stseg_train import TrainConfig

log = logging.getLogger(__name__)

STAGES_FILE = "stages.json"
METRICS_FILE = "metrics.json"
STAGES = ("data", "semantic", "preprocess", "instance", "evaluate", "example")


class StageLedger:
    """DIR/stages.json: the completed stages, each with its wall time and what it reports."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, dict[str, Any]] = (
            json.loads(path.read_text()) if path.is_file() else {}
        )

    def run(self, name: str, stage: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """`stage()`'s report, from the ledger if it completed before, else run now and recorded."""
        if name in self.done:
            log.info("demo: %s already complete, skipped", name)
            return self.done[name]
        log.info("demo: %s ...", name)
        tic = time.perf_counter()
        report = stage()
        # A stage resumed after a kill reports only the time of this invocation.
        report = {**report, "seconds": round(time.perf_counter() - tic, 1)}
        self.done[name] = report
        with atomic_write(self.path, "w") as handle:
            json.dump(self.done, handle, indent=2)
        log.info("demo: %s done in %.1f s", name, report["seconds"])
        return report


def semantic_config(run: Path, settings: DemoSettings) -> TrainConfig:
    """The semantic main job's resolved config for this demo (also fixes the rooms and seed)."""
    from stseg_train import resolve_config

    config = resolve_config(
        "synthetic", options={"out": str(run / "semantic")}, sets=_sets(settings)
    )
    return config


def _sets(settings: DemoSettings) -> list[str]:
    sets = []
    if settings.rooms is not None:
        val = -(-settings.rooms // 5)  # the generator holds out about one room in five
        sets += [f"synthetic_train_scenes={settings.rooms - val}", f"synthetic_val_scenes={val}"]
    if settings.threads is not None:
        sets.append(f"threads={settings.threads}")
    if not settings.progress:
        sets.append("progress=false")
    if settings.precision != "fp32":
        sets.append(f"precision={settings.precision}")
    return sets + list(settings.semantic_sets)


def stage_data(run: Path, settings: DemoSettings) -> dict[str, Any]:
    """Stage 1: the synthetic rooms (regenerated if an earlier invocation was interrupted)."""
    from stseg_train import make_synthetic_dataset

    config = semantic_config(run, settings)
    scenes = config.synthetic_train_scenes + config.synthetic_val_scenes
    make_synthetic_dataset(run / "data", scenes, config.seed, progress=settings.progress)
    val = _val_names(run)
    return {
        "rooms": scenes,
        "held_out": len(val),
        "seed": config.seed,
        "raw": str(run / "data/raw"),
    }


def _val_names(run: Path) -> list[str]:
    path = run / "data" / "raw" / "scannetv2_val.txt"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def stage_semantic(run: Path, settings: DemoSettings) -> dict[str, Any]:
    """Stage 2: the semantic main job (resumed from its checkpoint), or the given checkpoint."""
    if settings.semantic_weights:
        return {"weights": settings.semantic_weights, "trained": False}
    from stseg_train import CONFIG_NAME, train_command

    out = run / "semantic"
    resuming = (out / CONFIG_NAME).is_file()
    summary = train_command(
        "synthetic",
        data=None if resuming else str(run / "data"),
        out=str(out),
        resume=str(out) if resuming else None,
        max_iter=settings.semantic_max_iter,
        sets=tuple(_sets(settings)),
    )
    return {
        "weights": str(out / "checkpoints" / "final.pth"),
        "trained": True,
        "iterations": summary["iterations"],
        "val_miou_points": summary["val_miou_points"],
        "val_miou_voxels": summary["val_miou_voxels"],
        "resumed": resuming,
    }


def stage_preprocess(run: Path, settings: DemoSettings, weights: str) -> dict[str, Any]:
    """Stage 3: SSEN scene files, train/val by the generator's split, built in scenes.partial."""
    from ssen_instance.scenes import SUFFIX, preprocess_scannet

    final, partial = run / "scenes", run / "scenes.partial"
    shutil.rmtree(partial, ignore_errors=True)
    preprocess_scannet(
        run / "data" / "raw", partial / "all", semantic_weights=weights, progress=settings.progress
    )
    val = set(_val_names(run))
    counts = {"train": 0, "val": 0}
    for split in counts:
        (partial / split).mkdir()
    for path in sorted((partial / "all").glob(f"*{SUFFIX}")):
        split = "val" if path.name[: -len(SUFFIX)] in val else "train"
        path.rename(partial / split / path.name)
        counts[split] += 1
    (partial / "all").rmdir()
    if not counts["train"] or not counts["val"]:
        raise InstanceInputError(f"{partial}: {counts} scene files; need train and val rooms")
    os.replace(partial, final)
    return {"scenes": str(final), **counts}


def stage_instance(run: Path, settings: DemoSettings, weights: str) -> dict[str, Any]:
    """Stage 4: the embedding network with the recipe (resumed from its checkpoint)."""
    from ssen_instance.train import resume_config, ssen_config, train_instance
    from stseg_train import CONFIG_NAME

    out = run / "instance"
    overrides: dict[str, Any] = {
        "max_iter": settings.max_iter,
        "save_freq": settings.save_freq,
        "threads": settings.threads,
    }
    resuming = (out / CONFIG_NAME).is_file()
    if resuming:
        config = resume_config(out, **overrides)
    else:
        config = ssen_config(
            run / "scenes" / "train", out, recipe=settings.recipe, semantic_weights=weights,
            **overrides,
        )  # fmt: skip
    config.progress = settings.progress  # the recipe logs lines; the demo shows a bar with ETA
    config.precision = settings.precision
    state = train_instance(config, resume=resuming)
    return {
        "checkpoint": str(out / "instance.pt"),
        "recipe": settings.recipe,
        "iterations": config.max_iter if state is None else state.iteration,
        "resumed": resuming,
    }


def _segmenter(settings: DemoSettings, weights: str, run: Path):
    from ssen_instance.grouping import GroupingConfig
    from ssen_instance.inference import InstanceSegmenter

    grouping = GroupingConfig(strategy=settings.strategy)  # type: ignore[arg-type]
    return InstanceSegmenter.from_checkpoints(weights, run / "instance" / "instance.pt", grouping,
                                              precision=settings.precision)  # fmt: skip


def stage_evaluate(run: Path, settings: DemoSettings, weights: str) -> dict[str, Any]:
    """Stage 5: AP on the held-out rooms, predicted and ground-truth semantics."""
    from ssen_instance.pipeline import SemanticSource, evaluate_path

    segmenter = _segmenter(settings, weights, run)
    report: dict[str, Any] = {}
    sources: tuple[tuple[SemanticSource, str], ...] = (("predict", "predicted"), ("gt", "gt"))
    for source, folder in sources:
        out = run / "eval" / folder
        tic = time.perf_counter()
        # overwrite: an interrupted evaluation stage is redone over its own earlier output
        evaluate_path(
            run / "scenes" / "val", segmenter, out=out, overwrite=True, semantic=source,
            progress=settings.progress,
        )  # fmt: skip
        report[f"seconds_{folder}"] = round(time.perf_counter() - tic, 1)
        report[folder] = str(out / "metrics.json")
    return report


def stage_example(run: Path, settings: DemoSettings, weights: str) -> dict[str, Any]:
    """Stage 6: the first held-out room in the benchmark format (+ PNG and HTML views)."""
    from ssen_instance.export import to_nyu40, write_scannet_instances
    from ssen_instance.scenes import list_scene_files, read_ssen_scene

    final, partial = run / "example", run / "example.partial"
    shutil.rmtree(partial, ignore_errors=True)
    path = list_scene_files(run / "scenes" / "val")[0]
    scene = read_ssen_scene(path)
    pred = _segmenter(settings, weights, run).predict(scene.xyz, scene.rgb)
    index = write_scannet_instances(partial, scene.name, to_nyu40(pred.instances))
    files = {"index": str(final / index.name)}
    if settings.view:
        from ssen_instance.demo_view import write_views

        for key, written in write_views(partial, scene, pred).items():
            files[key] = str(final / written.name)
    os.replace(partial, final)
    return {
        "scene": scene.name,
        "points": len(scene),
        "instances": len(pred.instances),
        "gt_instances": len(set(scene.instance[scene.instance > 0].tolist())),
        "files": files,
    }


def _read_metrics(path: str) -> dict[str, Any]:
    found = json.loads(Path(path).read_text())
    keep = ("ap", "ap50", "ap25", "classes", "num_scenes", "skipped_predictions")
    return {key: found[key] for key in keep if key in found}


def summarize(run: Path, settings: DemoSettings, done: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """DIR/metrics.json from the stages' reports."""
    evaluation = done["evaluate"]
    seconds = {name: done[name]["seconds"] for name in STAGES}
    seconds["evaluate_predicted"] = evaluation["seconds_predicted"]
    seconds["evaluate_gt"] = evaluation["seconds_gt"]
    metrics = {
        "predicted_semantics": _read_metrics(evaluation["predicted"]),
        "gt_semantics": _read_metrics(evaluation["gt"]),
        "strategy": settings.strategy,
        "recipe": settings.recipe,
        "iterations": {
            "semantic": done["semantic"].get("iterations"),
            "instance": done["instance"]["iterations"],
        },
        "seconds": seconds,
        "resumed": {name: bool(done[name].get("resumed")) for name in ("semantic", "instance")},
        "rooms": {"all": done["data"]["rooms"], "held_out": done["data"]["held_out"]},
        "semantic": {k: v for k, v in done["semantic"].items() if k != "seconds"},
        "instance_checkpoint": done["instance"]["checkpoint"],
        "example": {k: v for k, v in done["example"].items() if k != "seconds"},
        "settings": settings.to_dict(),
    }
    with atomic_write(run / METRICS_FILE, "w") as handle:
        json.dump(metrics, handle, indent=2)
    return metrics


def require_view_support() -> None:
    """Fail before any work when the views cannot be written (stseg-viz is an optional extra)."""
    try:
        import stseg_viz  # noqa: F401
    except ImportError:
        raise InstanceInputError(
            "the demo's PNG and HTML views need stseg-viz, which is not installed: "
            "pip install 'ssen-instance[viz]' (or stseg-viz), or pass --no-view"
        ) from None


def run_demo(
    out: str | os.PathLike[str],
    given: dict[str, Any],
    *,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """The whole demo (module docstring) into `out`; returns what DIR/metrics.json holds.

    `given`: `DemoSettings` fields chosen by the caller (None: default, or on resume the saved).
    `overwrite`: start again in a folder holding an earlier demo (`open_demo_dir`).
    """
    run = Path(out)
    if not resume and given.get("view") is not False:
        # before the folder is made or an earlier demo removed: a failed start changes nothing
        require_view_support()
    settings = open_demo_dir(run, given, resume=resume, overwrite=overwrite)
    if settings.view:
        require_view_support()
    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    ledger = StageLedger(run / STAGES_FILE)
    ledger.run("data", lambda: stage_data(run, settings))
    weights = ledger.run("semantic", lambda: stage_semantic(run, settings))["weights"]
    ledger.run("preprocess", lambda: stage_preprocess(run, settings, weights))
    ledger.run("instance", lambda: stage_instance(run, settings, weights))
    ledger.run("evaluate", lambda: stage_evaluate(run, settings, weights))
    ledger.run("example", lambda: stage_example(run, settings, weights))
    return summarize(run, settings, ledger.done)


def format_summary(metrics: dict[str, Any]) -> str:
    """A few lines for the terminal: AP of both semantics, stage times, where things are."""
    lines = []
    for key, name in (("predicted_semantics", "predicted"), ("gt_semantics", "ground-truth")):
        m = metrics[key]
        lines.append(
            f"{name:>12} semantics: AP {_f(m.get('ap'))}  AP50 {_f(m.get('ap50'))}  "
            f"AP25 {_f(m.get('ap25'))}  ({m.get('num_scenes')} held-out rooms)"
        )
    stages: Sequence[str] = STAGES
    lines.append("seconds: " + ", ".join(f"{s} {metrics['seconds'][s]}" for s in stages))
    example = metrics["example"]
    lines.append(
        f"example {example['scene']}: {example['instances']} instances; "
        + ", ".join(f"{k} {v}" for k, v in example["files"].items())
    )
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
