"""Training checkpoints: atomic, hashed, verified on load, with retention and fallback.

Layout of `<run>/checkpoints/`:
    iter_00001000.pth + iter_00001000.pth.sha256   the newest `keep_last` periodic checkpoints
    best.pth (+ .sha256)                           best validation mIoU so far (never pruned)
    final.pth (+ .sha256)                          the end of the run (never pruned)

Each file is written with `stseg_data.atomic.atomic_write` (temporary file, fsync, rename); its
sha256 sidecar is written while the file's temporary is complete on disk, just before the rename,
so a disk that fills up fails before either is replaced. A file without a matching sidecar is not
trusted. Loading uses
`torch.load(weights_only=True)` only. A checkpoint holds the model (`state_dict`, the original
model zoo's key, plus `model_name` and `model_args`), the resolved config, the iteration, epoch and
in-epoch batch index, optimizer, scheduler and AMP-scaler state, and every rank's RNG state.
For real models it is also an stseg-models checkpoint (`format`, `model`, `inference` keys), so
`stseg-models predict --weights <run>/checkpoints/best.pth` works on it directly.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stseg_data.atomic import atomic_write
from stseg_data.torch_files import load_weights_only
from stseg_train.errors import CheckpointError, NonFiniteError, UnsafeCheckpointError
from stseg_train.faults import inject_fault

SCHEMA_VERSION = 1
REQUIRED_KEYS = frozenset(
    {
        "train_schema_version",
        "state_dict",
        "model_name",
        "model_args",
        "config",
        "iteration",
        "epoch",
        "batch_in_epoch",
        "world_size",
        "optimizer",
        "scheduler",
        "rng",
    }
)
_PERIODIC = re.compile(r"^iter_(\d{8})\.pth$")
log = logging.getLogger(__name__)


def nonfinite_tensors(state_dict: dict[str, Any]) -> list[str]:
    """Names of floating-point tensors in `state_dict` holding NaN or inf."""
    return [
        name
        for name, value in state_dict.items()
        if torch.is_tensor(value)
        and value.is_floating_point()
        and not bool(torch.isfinite(value).all())
    ]


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_checkpoint(
    path: str | Path, payload: dict[str, Any], *, midway: Callable[[], None] | None = None
) -> Path:
    """Write `payload` atomically to `path` and its sha256 sidecar; refuse non-finite parameters.

    Raises NonFiniteError (nothing written) if any model tensor is NaN/inf, and
    StsegRuntimeError (previous file intact) if the disk is full or the write fails.
    `midway` is called with half of the bytes written to the temporary file (the fault-injection
    point of the kill-during-write tests).
    """
    path = Path(path)
    bad = nonfinite_tensors(payload["state_dict"])
    if bad:
        raise NonFiniteError(
            f"{path}: refusing to save non-finite parameters ({len(bad)} tensors, first {bad[0]}); "
            "the previous checkpoint is unchanged"
        )
    buffer = io.BytesIO()
    torch.save({**payload, "train_schema_version": SCHEMA_VERSION}, buffer)
    blob = buffer.getvalue()
    digest = hashlib.sha256(blob).hexdigest()
    half = len(blob) // 2
    with atomic_write(path, "wb") as handle:
        handle.write(blob[:half])
        if midway is not None:
            handle.flush()
            midway()
        handle.write(blob[half:])
        # All bytes on disk before the sidecar is replaced: a full disk fails here, with the
        # previous file and its sidecar both untouched (never a new file beside an old sidecar).
        handle.flush()
        os.fsync(handle.fileno())
        with atomic_write(sidecar_path(path), "w") as side:
            side.write(f"{digest}  {path.name}\n")
    return path


def _read_verified(path: Path) -> bytes:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    side = sidecar_path(path)
    if not side.is_file():
        raise CheckpointError(f"corrupt: {path} (no sha256 sidecar {side.name})")
    expected = side.read_text().split()[0] if side.read_text().strip() else ""
    blob = path.read_bytes()
    found = hashlib.sha256(blob).hexdigest()
    if found != expected:
        raise CheckpointError(
            f"corrupt: {path} (sha256 {found[:12]}… does not match the sidecar's {expected[:12]}…, "
            f"{len(blob)} bytes)"
        )
    return blob


def load_checkpoint(path: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """Load a training checkpoint (weights only), checking hash, schema version and keys."""
    path = Path(path)
    blob = _read_verified(path) if verify else path.read_bytes()
    # One weights-only loader for every file the project reads: a pickle that would call code is
    # "refused: not a safe checkpoint" (naming what it calls), a cut file "corrupt or truncated".
    payload = load_weights_only(
        path,
        data=blob,
        read_error=CheckpointError,
        unsafe_error=UnsafeCheckpointError,
        accepted="only checkpoints written by stseg-train are accepted",
    )
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a stseg-train checkpoint (top level is not a dict)")
    version = payload.get("train_schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint schema version {version!r} is not supported "
            f"(this stseg-train reads up to {SCHEMA_VERSION})"
        )
    missing = sorted(REQUIRED_KEYS - set(payload))
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks key(s) {', '.join(missing)}")
    return payload


class CheckpointManager:
    """Periodic checkpoints with retention, plus `best` and `final`, in one folder."""

    def __init__(self, folder: str | Path, keep_last: int = 2) -> None:
        self.folder = Path(folder)
        self.keep_last = keep_last

    def periodic(self) -> list[tuple[int, Path]]:
        """(iteration, path) of the periodic checkpoints on disk, newest first."""
        if not self.folder.is_dir():
            return []
        found = []
        for item in self.folder.iterdir():
            match = _PERIODIC.match(item.name)
            if match:
                found.append((int(match.group(1)), item))
        return sorted(found, reverse=True)

    def save(self, iteration: int, payload: dict[str, Any]) -> Path:
        """Write `iter_<iteration>.pth`, then prune periodic ones beyond `keep_last`."""
        path = save_checkpoint(
            self.folder / f"iter_{iteration:08d}.pth",
            payload,
            midway=lambda: inject_fault("hang-write", 0, iteration),
        )
        self._prune()
        return path

    def save_named(self, name: str, payload: dict[str, Any]) -> Path:
        """Write `<name>.pth` (best, final); never pruned."""
        return save_checkpoint(self.folder / f"{name}.pth", payload)

    def _prune(self) -> None:
        for _iteration, path in self.periodic()[self.keep_last :]:
            try:
                path.unlink()
                sidecar_path(path).unlink(missing_ok=True)
            except OSError as error:  # pruning is housekeeping: never fail training for it
                log.warning("could not delete old checkpoint %s: %s", path, error)

    def remove_partial(self) -> list[Path]:
        """Delete temporary files a killed write left behind (`.<name>.<random>.tmp`)."""
        if not self.folder.is_dir():
            return []
        stale = [p for p in self.folder.iterdir() if p.name.startswith(".") and p.suffix == ".tmp"]
        for path in stale:
            path.unlink(missing_ok=True)
        return stale

    def has_any(self) -> bool:
        return bool(self.periodic()) or (self.folder / "final.pth").is_file()

    def load_latest_valid(
        self, report: Callable[[str], None] = log.warning
    ) -> tuple[dict[str, Any], Path] | None:
        """The newest periodic checkpoint that verifies, falling back over corrupt ones.

        Returns None when there are no checkpoints at all; raises CheckpointError when there are
        some but none is valid (never silently restart from scratch).
        """
        candidates = self.periodic()
        problems = []
        for _iteration, path in candidates:
            try:
                return load_checkpoint(path), path
            except CheckpointError as error:
                report(f"{error}; trying the previous checkpoint")
                problems.append(str(error))
        if candidates:
            raise CheckpointError(
                f"{self.folder}: no valid checkpoint ({'; '.join(problems)}); pass "
                "--restart-from-scratch to start over"
            )
        return None
