"""Fault injection for the reliability tests (off unless `STSEG_TRAIN_FAULT` is set).

`STSEG_TRAIN_FAULT="kind:rank:iteration[,kind:rank:iteration...]"` with kind one of
`nan` (the loss of that step becomes NaN), `oom` (a `torch.OutOfMemoryError` in that step's
forward), `exit` (the process calls `os._exit(13)` after that step), `hang` (the process blocks
for ever once the periodic checkpoint of that iteration is on disk, with its sidecar) or
`hang-write` (it blocks halfway through writing that checkpoint's bytes, before the rename).
`rank` may be `*`. A hanging process first prints one line, `HANG_MARKER ...`, to stderr, so a test
can wait for it and then `kill -9` the process at a known point instead of guessing a time.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TypeVar

import torch

T = TypeVar("T")
HANG_MARKER = "stseg-train fault: hanging"


def _matches(kind: str, rank: int, iteration: int) -> bool:
    spec = os.environ.get("STSEG_TRAIN_FAULT", "")
    for item in filter(None, spec.split(",")):
        parts = item.strip().split(":")
        if len(parts) != 3:
            continue
        k, r, i = parts
        if k == kind and r in ("*", str(rank)) and i == str(iteration):
            return True
    return False


def inject_fault(kind: str, rank: int, iteration: int, value: T | None = None) -> T | None:
    """Apply the configured fault of `kind` at (rank, iteration), else return `value` unchanged."""
    if "STSEG_TRAIN_FAULT" not in os.environ or not _matches(kind, rank, iteration):
        return value
    if kind == "nan" and isinstance(value, torch.Tensor):
        return value * float("nan")  # type: ignore[return-value]
    if kind == "oom":
        raise torch.OutOfMemoryError(f"injected out-of-memory at iteration {iteration}")
    if kind == "exit":
        os._exit(13)
    if kind in ("hang", "hang-write"):
        _hang(f"{HANG_MARKER} ({kind}) at iteration {iteration}, pid {os.getpid()}")
    return value


def _hang(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
    while True:  # until the test kills the process
        time.sleep(3600)
