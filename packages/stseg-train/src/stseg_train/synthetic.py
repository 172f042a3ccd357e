"""The main job on built-in data: `stseg-train synthetic`.

1. generate synthetic ScanNet-format scenes (`stseg_data.synth.write_synthetic`, real on-disk
   ScanNet layout) under `<data>/raw` — skipped when already there;
2. preprocess them through the real ScanNet path (`stseg_data.preprocess`) into `<data>/prepared`;
3. train on the CPU (the `synthetic` recipe: a budget counted in iterations, so results repeat);
4. evaluate on the held-out scenes (`metrics.json`, on voxels and on original points);
5. predict one held-out scene with `stseg_models.Segmenter` from the written checkpoint (the
   checkpoint is an stseg-models checkpoint, so `stseg-models predict --weights` works on it),
   and render it with `stseg_viz` when that package is importable.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from stseg_data.atomic import atomic_write
from stseg_train.components import checkpoint_bytes, dataset_components
from stseg_train.config import TrainConfig
from stseg_train.errors import TrainInputError
from stseg_train.run import launch_training, open_run

log = logging.getLogger("stseg_train")


def synthetic_data_root(config: TrainConfig) -> Path:
    """The synthetic data folder (raw/, prepared/, synthetic.json) of `config`.

    `config.data` names that folder on the command line (default `<out>/data`), but a run trains on
    its `prepared/` subfolder and saves that path as `data` in its config.json, with the folder
    itself as `synthetic_data_root`. A resumed run starts from the saved config, so a `data` equal
    to `<synthetic_data_root>/prepared` means "the run's own data"; anything else is a `--data`
    given now.
    """
    saved = config.synthetic_data_root
    if saved and Path(config.data) == Path(saved) / "prepared":
        return Path(saved)
    return Path(config.data) if config.data else Path(config.out) / "data"


def synthetic_data_state(root: Path, scenes: int, seed: int) -> str:
    """ "complete" (reusable), "partial" (ours, interrupted) or "absent"; raises TrainInputError
    when `root` holds anything else (checked before the run folder is made)."""
    marker = root / "synthetic.json"
    wanted = {"scenes": scenes, "seed": seed}
    try:
        found = json.loads(marker.read_text()) if marker.is_file() else None
    except (ValueError, UnicodeDecodeError):
        found = None
    if isinstance(found, dict) and {key: found.get(key) for key in wanted} == wanted:
        # markers of older versions have no "complete": they were written only when complete
        complete = found.get("complete", True) and (root / "prepared" / "train.txt").is_file()
        return "complete" if complete else "partial"
    if root.is_dir() and any(root.iterdir()):
        raise TrainInputError(
            f"--data {root}: folder holds something other than synthetic data of "
            f"{scenes} scenes with seed {seed}; choose another folder"
        )
    return "absent"


def make_synthetic_dataset(root: Path, scenes: int, seed: int, *, progress: bool = False) -> Path:
    """Raw synthetic ScanNet under root/raw and its preprocessed form under root/prepared
    (`progress`: a bar with ETA for the generation and for the preprocessing)."""
    from stseg_data.preprocess import preprocess
    from stseg_data.synth import write_synthetic

    raw, prepared = root / "raw", root / "prepared"
    marker = root / "synthetic.json"
    wanted = {"scenes": scenes, "seed": seed}
    if synthetic_data_state(root, scenes, seed) == "complete":
        log.info("synthetic data: reusing %s", prepared)
        return prepared
    if marker.is_file():
        # synthetic.json says root is this job's own folder: what an interrupted generation left
        # in raw/ and prepared/ is removed, so the generator and preprocessing start on empty
        # folders (they refuse non-empty ones: that protects a user's real data elsewhere).
        log.info("synthetic data: %s was interrupted while being written; writing it again", root)
        for partial in (raw, prepared):
            shutil.rmtree(partial, ignore_errors=True)
    tic = time.perf_counter()
    # The marker is written first, so a run killed while generating knows the folder is its own
    # and regenerates it (same names, overwritten) instead of refusing it on --resume.
    with atomic_write(marker, "w") as handle:
        json.dump({**wanted, "complete": False}, handle)
    write_synthetic("scannet", raw, scenes, seed=seed, progress=progress)
    preprocess("scannet", raw, prepared, workers=min(2, os.cpu_count() or 1), progress=progress)
    with atomic_write(marker, "w") as handle:
        json.dump({**wanted, "complete": True}, handle)
    log.info("synthetic data: %d scenes in %.0f s", scenes, time.perf_counter() - tic)
    return prepared


def predict_one_scene(run: Path, prepared: Path) -> dict[str, Any]:
    """Predict the first validation scene from the run's final checkpoint; write PLY (+ PNG/HTML)."""
    from stseg_data.io import read_scene
    from stseg_data.ply import write_ply
    from stseg_data.splits import read_split
    from stseg_models import Segmenter

    scene = read_split(prepared / "val.txt", prepared)[0]
    cloud = read_scene(scene)
    segmenter = Segmenter.from_checkpoint(run / "checkpoints" / "final.pth", device="cpu")
    labels, _ = segmenter.predict(cloud.xyz, cloud.rgb)
    out = run / "predictions"
    ply = out / f"{scene.stem}.ply"
    extra = {"label": labels.astype(np.int32)}
    if cloud.labels is not None:
        extra["gt"] = cloud.labels.astype(np.int32)
    write_ply(ply, cloud.xyz, cloud.rgb, extra=extra)
    npy = out / f"{scene.stem}.labels.npy"
    buffer = io.BytesIO()
    np.save(buffer, labels.astype(np.int64))
    with atomic_write(npy, "wb") as handle:
        handle.write(buffer.getvalue())
    files = {"ply": str(ply), "labels": str(npy)}
    accuracy = None
    if cloud.labels is not None:
        valid = cloud.labels != 255
        accuracy = float((labels[valid] == cloud.labels[valid]).mean())
    files.update(_render(scene, npy, out))
    return {"scene": scene.stem, "points": len(labels), "accuracy": accuracy, "files": files}


def _render(scene: Path, labels: Path, out: Path) -> dict[str, str]:
    try:
        from stseg_viz.render import compare_scenes
        from stseg_viz.viewer import write_viewer
    except ImportError:
        log.info("stseg_viz is not installed: skipping the PNG and HTML of the prediction")
        return {}
    png, html = out / f"{scene.stem}.png", out / f"{scene.stem}.html"
    compare_scenes(labels, scene, png, cutaway=True, title=f"{scene.stem}: prediction vs truth")
    write_viewer(scene, html, labels=labels)
    return {"png": str(png), "html": str(html)}


def run_synthetic(
    config: TrainConfig, *, resume: bool = False, gpus: int = 0, procs: int = 0
) -> dict[str, Any]:
    """The whole main job (see the module docstring); returns the summary written to summary.json."""
    if not config.out:
        raise TrainInputError("no run directory: pass --out RUN")
    run = Path(config.out)
    data_root = synthetic_data_root(config)
    config = dataclasses.replace(
        config, data=str(data_root / "prepared"), synthetic_data_root=str(data_root)
    )
    scenes = config.synthetic_train_scenes + config.synthetic_val_scenes
    synthetic_data_state(data_root, scenes, config.seed)  # a foreign --data: before any write
    with open_run(config, resume=resume, checkpoint_bytes=checkpoint_bytes(config)):
        tic = time.perf_counter()
        make_synthetic_dataset(data_root, scenes, config.seed, progress=config.progress)
        data_s = time.perf_counter() - tic
        state = launch_training(config, dataset_components, resume=resume, gpus=gpus, procs=procs)
        train_s = time.perf_counter() - tic - data_s
        metrics = json.loads((run / "metrics.json").read_text())
        prediction = predict_one_scene(run, data_root / "prepared")
        summary = {
            "val_miou_points": metrics["miou"],
            "val_miou_voxels": metrics["voxels"]["miou"],
            "val_overall_accuracy": metrics["overall_accuracy"],
            "iterations": config.max_iter if state is None else state.iteration,
            "seconds_data": round(data_s, 1),
            "seconds_train_and_eval": round(train_s, 1),
            "checkpoint": str(run / "checkpoints" / "final.pth"),
            "prediction": prediction,
        }
        with atomic_write(run / "summary.json", "w") as handle:
            json.dump(summary, handle, indent=2)
        return summary
