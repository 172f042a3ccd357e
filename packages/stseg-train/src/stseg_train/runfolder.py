"""The run folder of a training: checked, created, locked and given its config.json in one place.

Every training command (`stseg-train DATASET`, `stseg-train synthetic`, `ssen-instance train`)
trains inside `open_run(config, resume=..., checkpoint_bytes=...)`:

1. before anything is written: the config is validated; a new run refuses an existing folder with
   content, a resumed one must hold a run of the same identity; files must be creatable there and
   one checkpoint must fit on its filesystem (a read-only folder or a full disk is found now, not
   after the first hour of training);
2. the folder is created and its `RunLock` taken: a second process training in the same folder is
   refused at once, before it changes a byte; then temporary files of a killed write are removed
   and config.json is written;
3. the training runs; the lock is released on exit. A new run refused by an input error (exit 2:
   bad labels, a wrong --weights file, ...) before its first checkpoint is removed again, so the
   corrected command is not refused with "a run already exists there".

Under `torchrun` every rank runs the command; only global rank 0 does steps 1-3 (its lock covers
the whole run; the other ranks must not be refused by it). Spawned workers (`--procs`/`--gpus`)
never come here: the launching process holds the lock while they train.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from stseg_data.atomic import atomic_write
from stseg_data.errors import StsegError
from stseg_data.outputs import check_free_space, check_writable
from stseg_train.checkpoint import CheckpointManager
from stseg_train.config import TrainConfig, config_from_dict, identity_diff, validate
from stseg_train.errors import TrainInputError
from stseg_train.runlock import LOCK_NAME, RunLock

log = logging.getLogger(__name__)
CONFIG_NAME = "config.json"
# Room for what a checkpoint holds beside the tensors (config, RNG states, loss history) and for
# the sidecar, metrics.json and logs written next to it.
CHECKPOINT_MARGIN_BYTES = 16 * 2**20


def launched_rank() -> int | None:
    """This process's global rank when a launcher such as torchrun started it as one rank of a
    group (WORLD_SIZE and RANK in the environment), else None."""
    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:
        return int(os.environ["RANK"])
    return None


def checkpoint_bytes_estimate(build_model: Callable[[], torch.nn.Module]) -> int:
    """About how many bytes one checkpoint of the network `build_model` makes will take.

    The network is built on PyTorch's `meta` device (shapes only, no memory, milliseconds). A
    checkpoint holds the parameters and buffers plus the optimizer's state (SGD's momentum: one
    copy; Adam's two moments: two), so 3x the parameter bytes plus the buffers and a margin.
    """
    with torch.device("meta"):
        model = build_model()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return 3 * params + buffers + CHECKPOINT_MARGIN_BYTES


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def _existing_run(run: Path) -> TrainInputError:
    return TrainInputError(
        f"{run}: a run already exists there; pass --resume {run} to continue it, or choose "
        "another --out"
    )


def check_run_dir(config: TrainConfig, *, resume: bool) -> None:
    """Refuse what no run can start in (nothing is written): see `open_run` step 1."""
    validate(config)
    if not config.out:
        raise TrainInputError("no run directory: pass --out RUN")
    run = Path(config.out)
    if not resume:
        if _is_nonempty_dir(run) or (run.exists() and not run.is_dir()):
            raise _existing_run(run)
        return
    saved_path = run / CONFIG_NAME
    if not saved_path.is_file():
        raise TrainInputError(f"--resume {run}: not a training run (no {CONFIG_NAME} there)")
    saved = _read_config_json(saved_path)
    diff = identity_diff(saved, config)
    if diff:
        raise TrainInputError(
            f"--resume {run}: this command's config differs from the run's: " + "; ".join(diff)
        )


def write_run_config(config: TrainConfig) -> None:
    """Write config.json (left untouched when it already holds exactly this config)."""
    path = Path(config.out) / CONFIG_NAME
    text = json.dumps(config.to_dict(), indent=2, sort_keys=True)
    if path.is_file() and path.read_text() == text:
        return
    with atomic_write(path, "w") as handle:
        handle.write(text)


def prepare_run_dir(config: TrainConfig, *, resume: bool) -> TrainConfig:
    """Check, create and write config.json without a lock (library use and tests; the commands
    use `open_run`)."""
    check_run_dir(config, resume=resume)
    run = Path(config.out)
    if resume:
        _remove_partial(run)
    run.mkdir(parents=True, exist_ok=True)
    write_run_config(config)
    return config


@contextlib.contextmanager
def open_run(
    config: TrainConfig, *, resume: bool, checkpoint_bytes: int | None = None
) -> Iterator[TrainConfig]:
    """Train inside this: the run folder checked, created, locked, with its config.json
    (module docstring). `checkpoint_bytes` (see `checkpoint_bytes_estimate`) must fit there."""
    if launched_rank() not in (None, 0):
        validate(config)  # the same refusal as rank 0's, without touching the folder
        yield config
        return
    check_run_dir(config, resume=resume)
    run = Path(config.out)
    check_writable(run)
    if checkpoint_bytes:
        check_free_space(run, checkpoint_bytes, "a checkpoint")
    created = _make_folders(run)
    lock = RunLock(run)
    try:
        lock.acquire()
        if not resume and _holds_more_than_lock(run):
            # another new run claimed the folder between the check and the lock
            raise _existing_run(run)
    except BaseException:
        lock.release()
        _remove_empty(created)  # never another process's files: only folders left empty
        raise
    try:
        if resume:
            _remove_partial(run)
        write_run_config(config)
        yield config
    except StsegError as error:
        if not resume and error.exit_code == 2 and not _has_checkpoint(run):
            lock.release()
            _undo_new_run(run, created)
        raise
    finally:
        lock.release()


def _make_folders(run: Path) -> list[Path]:
    """Create `run` and its missing parents; those this call created, innermost first.

    Each folder counts as created here only if this process's own `mkdir` made it, so a refusal
    never removes a folder another process made at the same moment.
    """
    created = []
    for folder in reversed((run, *run.parents)):  # outermost first
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        created.append(folder)
    return created[::-1]


def _holds_more_than_lock(run: Path) -> bool:
    return any(entry.name != LOCK_NAME for entry in run.iterdir())


def _has_checkpoint(run: Path) -> bool:
    folder = run / "checkpoints"
    return folder.is_dir() and any(folder.glob("*.pth"))


def _remove_partial(run: Path) -> None:
    for stale in CheckpointManager(run / "checkpoints").remove_partial():
        log.info("removed %s, left by a write that was interrupted", stale)


def _undo_new_run(run: Path, created: list[Path]) -> None:
    """Remove what a refused new run wrote: the folder if this process created it, else (it
    existed empty) everything in it; then the parents it created."""
    try:
        if run in created:
            shutil.rmtree(run)
        else:
            for entry in run.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
    except OSError as error:  # never hide the refusal behind a cleanup problem
        log.warning("could not remove %s after the refusal: %s", run, error)
    _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def load_run_config(run: str | Path) -> TrainConfig:
    """The resolved config saved in a run directory."""
    path = Path(run) / CONFIG_NAME
    if not path.is_file():
        raise TrainInputError(f"{run}: not a training run (no {CONFIG_NAME})")
    return config_from_dict(_read_config_json(path), str(path))


def _read_config_json(path: Path) -> dict:
    """The mapping saved in a run's config.json (one line naming the file when unreadable)."""
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrainInputError(f"{path}: unreadable run config ({error})") from None
    if not isinstance(saved, dict):
        raise TrainInputError(f"{path}: not a run config (top level is not a mapping)")
    return saved
