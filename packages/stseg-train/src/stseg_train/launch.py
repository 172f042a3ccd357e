"""`train_command`: one call from the CLI's options to a finished (or resumed) training run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from stseg_train.config import resolve_config
from stseg_train.errors import TrainInputError
from stseg_train.run import CONFIG_NAME, load_run_config, run_summary, train


def train_command(
    dataset: str,
    *,
    data: str | None = None,
    model: str | None = None,
    gpus: int = 0,
    procs: int = 0,
    weights: str | None = None,
    resume: str | None = None,
    restart_from_scratch: bool = False,
    max_iter: int | None = None,
    batch_size: int | None = None,
    voxel_size: float | None = None,
    precision: str | None = None,
    threads: int | None = None,
    out: str | None = None,
    config_file: str | None = None,
    sets: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Resolve the config (recipe, file, options, --set; or the resumed run's) and train."""
    if gpus < 0 or procs < 0:
        raise TrainInputError("--gpus and --procs must be >= 0")
    if resume and out and Path(out) != Path(resume):
        raise TrainInputError(f"--resume {resume} and --out {out} name different runs")
    run = resume or out or f"runs/{dataset}"
    base = None
    if resume:
        if not (Path(resume) / CONFIG_NAME).is_file():
            raise TrainInputError(f"--resume {resume}: not a training run (no {CONFIG_NAME})")
        base = load_run_config(resume).to_dict()
        task = base["task"]
        if task:  # e.g. ssen-instance's embedding runs: their own command knows their data
            raise TrainInputError(
                f"--resume {resume}: a {task} run; continue it with `{task} train --resume {resume}`"
            )
    if weights is not None and not Path(weights).is_file():
        raise TrainInputError(f"--weights {weights}: file not found")
    options = {
        "data": data,
        "model": model,
        "weights": weights,
        "max_iter": max_iter,
        "batch_size": batch_size,
        "voxel_size": voxel_size,
        "precision": precision,
        "threads": threads,
        "out": run,
    }
    config = resolve_config(dataset, config_file=config_file, options=options, sets=sets, base=base)
    if not gpus and not procs and config.cpu_procs > 1:
        procs = min(config.cpu_procs, os.cpu_count() or 1)
        procs = procs if procs > 1 else 0
    if dataset == "synthetic":
        from stseg_train.synthetic import run_synthetic

        return run_synthetic(config, resume=bool(resume), gpus=gpus, procs=procs)
    from stseg_train.components import checkpoint_bytes, dataset_components
    from stseg_train.data import split_items

    # fail fast on a bad --data or --model before the run folder exists
    split_items(config, config.train_split)
    split_items(config, config.val_split)
    state = train(
        config,
        dataset_components,
        resume=bool(resume),
        restart_from_scratch=restart_from_scratch,
        gpus=gpus,
        procs=procs,
        checkpoint_bytes=checkpoint_bytes(config),
    )
    return run_summary(state, Path(run))
