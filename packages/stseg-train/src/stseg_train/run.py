"""A training run end to end: the run directory, launching processes, resume, the worker body.

`train(config, ...)` is what `stseg-train DATASET` calls. It prepares the run directory (refusing to
clobber an existing run unless resuming, RELIABILITY H3), writes the resolved config once, and runs
`worker` in this process, in N spawned processes (`--gpus`/`--procs`), or as one of the processes
`torchrun` started (detected from its environment). `components` names a module-level function
`(config, ctx) -> Components` so spawned processes can import it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stseg_data.atomic import atomic_write
from stseg_train.checkpoint import CheckpointManager
from stseg_train.config import TrainConfig, config_from_dict, identity_diff, identity_hash
from stseg_train.distributed import DistContext, check_gpus, context_from_env, launch
from stseg_train.errors import TrainInputError
from stseg_train.rng import seed_everything
from stseg_train.state import Components, StepHook, TrainState
from stseg_train.trainer import Trainer

log = logging.getLogger(__name__)
ComponentsFactory = Callable[[TrainConfig, DistContext], Components]
CONFIG_NAME = "config.json"


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def prepare_run_dir(config: TrainConfig, *, resume: bool) -> TrainConfig:
    """Create or check `config.out`; on resume, check and merge the run's saved config.

    A new run refuses an existing non-empty folder. A resumed run must have a `config.json` whose
    identity fields (model, dataset, classes, voxel size, ...) equal this command's.
    """
    run = Path(config.out)
    saved_path = run / CONFIG_NAME
    if not resume:
        if _is_nonempty_dir(run) or (run.exists() and not run.is_dir()):
            raise TrainInputError(
                f"{run}: a run already exists there; pass --resume {run} to continue it, or choose "
                "another --out"
            )
    else:
        if not saved_path.is_file():
            raise TrainInputError(f"--resume {run}: not a training run (no {CONFIG_NAME} there)")
        try:
            saved = json.loads(saved_path.read_text())
        except json.JSONDecodeError as error:
            raise TrainInputError(f"{saved_path}: unreadable run config ({error})") from None
        diff = identity_diff(saved, config)
        if diff:
            raise TrainInputError(
                f"--resume {run}: this command's config differs from the run's: " + "; ".join(diff)
            )
        for stale in CheckpointManager(run / "checkpoints").remove_partial():
            log.info("removed %s, left by a write that was interrupted", stale)
    run.mkdir(parents=True, exist_ok=True)
    with atomic_write(saved_path, "w") as handle:
        json.dump(config.to_dict(), handle, indent=2, sort_keys=True)
    return config


def load_run_config(run: str | Path) -> TrainConfig:
    """The resolved config saved in a run directory."""
    path = Path(run) / CONFIG_NAME
    if not path.is_file():
        raise TrainInputError(f"{run}: not a training run (no {CONFIG_NAME})")
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrainInputError(f"{path}: unreadable run config ({error})") from None
    if not isinstance(saved, dict):
        raise TrainInputError(f"{path}: not a run config (top level is not a mapping)")
    return config_from_dict(saved)


def worker(
    config: TrainConfig,
    components: ComponentsFactory,
    resume: bool,
    restart_from_scratch: bool = False,
    on_step: StepHook | None = None,
    until: int | None = None,
    trainer_class: type[Trainer] = Trainer,
) -> TrainState:
    """The body of every training process (single, spawned, or torchrun-launched).

    `trainer_class` lets another task (SSEN's embedding loss) reuse this process body with its own
    `Trainer` subclass.
    """
    ctx = context_from_env(config.dist_timeout_s, prefer_cuda=_wants_cuda(config))
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    elif ctx.distributed and ctx.device == "cpu":
        # Share the cores between the local processes instead of oversubscribing them.
        local = int(os.environ.get("LOCAL_WORLD_SIZE", ctx.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))
    seed_everything(config.seed)
    parts = components(config, ctx)
    if config.sync_bn and ctx.distributed:
        if ctx.device == "cpu":
            raise TrainInputError("sync_bn needs CUDA (torch's SyncBatchNorm has no CPU kernel)")
        parts.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(parts.model)
    trainer = trainer_class(config, ctx, parts, config.out, on_step=on_step)
    if resume:
        manager = CheckpointManager(Path(config.out) / "checkpoints", config.keep_last)
        found = None if restart_from_scratch else manager.load_latest_valid(log.warning)
        if found is not None:
            payload, path = found
            if payload.get("config_hash") != identity_hash(config):
                raise TrainInputError(f"{path}: checkpoint belongs to a different config")
            trainer.restore(payload)
            if ctx.is_main:
                log.info("resumed from %s at iteration %d", path, trainer.state.iteration)
        elif ctx.is_main:
            log.info("--resume %s: no checkpoint written yet; starting at iteration 0", config.out)
    return trainer.fit(until)


def _wants_cuda(config: TrainConfig) -> bool:
    return bool(config.extra.get("device", "auto") != "cpu") and torch.cuda.is_available()


def train(
    config: TrainConfig,
    components: ComponentsFactory,
    *,
    resume: bool = False,
    restart_from_scratch: bool = False,
    gpus: int = 0,
    procs: int = 0,
) -> TrainState | None:
    """Run a whole training job. Returns the final state (None when workers were spawned)."""
    if gpus and procs:
        raise TrainInputError("pass either --gpus or --procs, not both")
    if gpus:
        check_gpus(gpus)
    if not config.out:
        raise TrainInputError("no run directory: pass --out RUN")
    prepare_run_dir(config, resume=resume)
    return launch_training(
        config,
        components,
        resume=resume,
        restart_from_scratch=restart_from_scratch,
        gpus=gpus,
        procs=procs,
    )


def launch_training(
    config: TrainConfig,
    components: ComponentsFactory,
    *,
    resume: bool = False,
    restart_from_scratch: bool = False,
    gpus: int = 0,
    procs: int = 0,
) -> TrainState | None:
    """Run `worker` here or in spawned processes, in an already prepared run directory."""
    nprocs = gpus or procs
    if nprocs > 1 and "WORLD_SIZE" not in os.environ:
        if procs:
            config.extra.setdefault("device", "cpu")
        launch(worker, (config, components, resume, restart_from_scratch), nprocs)
        return None
    return worker(config, components, resume, restart_from_scratch)


def run_summary(state: TrainState | None, run: Path) -> dict[str, Any]:
    """A small JSON-able summary of a finished run."""
    out: dict[str, Any] = {"run": str(run)}
    if state is not None:
        out.update(
            iteration=state.iteration,
            best_miou=state.best_miou,
            nonfinite_skips=state.nonfinite_skips,
            oom_skips=state.oom_skips,
        )
    return out
