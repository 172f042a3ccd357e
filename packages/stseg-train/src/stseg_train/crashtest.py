"""Kill-and-resume checks of a training command, run as a user would: in child processes.

The building blocks of the resume tests of every training command (`stseg-train DATASET`,
`ssen-instance train`):

- `run_command(argv)`: run a command to its end (optionally with a file-size limit, the way a full
  disk looks to a writer: `write` fails with `EFBIG` once a file would grow past the limit);
- `run_until_hang(argv, fault)`: run it with a `hang` / `hang-write` fault (`stseg_train.faults`),
  wait for the line the hanging process prints, then `SIGKILL` it — a kill at a known point (after
  checkpoint k is on disk, or halfway through writing it), not after a guessed time;
  `hanging(argv, fault)` is the same as a context manager, the process alive inside it (a second
  command can meet the first one mid-run, e.g. its run lock);
- `file_fingerprint(folder)`, `error_line(output)`, `checkpoint_path(run, k)`: what "nothing was
  overwritten", "one clear line" and "checkpoint k" mean in those checks;
- `state_differences(a, b)`: everything that must be bitwise equal between two checkpoints of the
  same iteration (weights, norm statistics, optimizer and scheduler state, every RNG state, the
  data position, counters, loss history and metrics), as readable lines; empty when equal.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from stseg_data.testing import error_line, file_fingerprint
from stseg_train.faults import HANG_MARKER

__all__ = ["error_line", "file_fingerprint"]  # re-exported: the resume tests import them here

FAULT_ENV = "STSEG_TRAIN_FAULT"


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a child run: one OpenMP thread, no fault unless given."""
    env = {k: v for k, v in os.environ.items() if k != FAULT_ENV}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def _file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:  # runs in the child between fork and exec
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        # The default action of SIGXFSZ kills the process; ignored, `write` fails with EFBIG.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return apply


def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    file_size_limit: int | None = None,
    timeout: float = 300.0,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` to its end; stdout and stderr together in `.stdout`."""
    return subprocess.run(
        list(argv),
        env=child_env(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=None if file_size_limit is None else _file_size_limit(file_size_limit),
    )


class Hanging:
    """A child process stopped at a fault point: its pid and its output up to the hang."""

    def __init__(self, proc: subprocess.Popen[str], lines: list[str]) -> None:
        self.proc = proc
        self.lines = lines

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        return "".join(self.lines)


@contextlib.contextmanager
def hanging(
    argv: Sequence[str],
    fault: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    cwd: str | Path | None = None,
) -> Iterator[Hanging]:
    """Run `argv` with `STSEG_TRAIN_FAULT=fault`; yield once it hangs there (alive, e.g. holding
    its run's lock), SIGKILL it on exit.

    Raises AssertionError (with the output) if the process ends, or does not hang within `timeout`
    seconds: the fault point was never reached.
    """
    proc = subprocess.Popen(
        list(argv),
        env=child_env({**(env or {}), FAULT_ENV: fault}),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    hung = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(HANG_MARKER):
                hung.set()
        hung.set()  # end of output: the process exited (checked below)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        reached = hung.wait(timeout) and proc.poll() is None
        if not reached or not any(line.startswith(HANG_MARKER) for line in lines):
            raise AssertionError(
                f"{' '.join(argv)} did not reach fault {fault} (exit {proc.poll()}):\n"
                + "".join(lines)
            )
        yield Hanging(proc, lines)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(10)


def run_until_hang(
    argv: Sequence[str],
    fault: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
    cwd: str | Path | None = None,
) -> str:
    """Run `argv` with `STSEG_TRAIN_FAULT=fault`, SIGKILL it once it hangs; returns its output.

    Raises AssertionError (with the output) if the process ends, or does not hang within `timeout`
    seconds: the fault point was never reached.
    """
    with hanging(argv, fault, env=env, timeout=timeout, cwd=cwd) as child:
        pass
    return child.output


def load(path: str | Path) -> dict[str, Any]:
    """A checkpoint's payload (weights only, on the CPU)."""
    payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return payload


def _diff(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and torch.equal(a, b)
        )
        if not same:
            out.append(f"{where}: tensors differ")
    elif isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            out.append(f"{where}: keys {sorted(map(str, set(a) ^ set(b)))} in one only")
        for key in a:
            if key in b:
                _diff(a[key], b[key], f"{where}.{key}", out)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append(f"{where}: lengths {len(a)} != {len(b)}")
        for index, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(x, y, f"{where}[{index}]", out)
    elif a != b and not (a != a and b != b):  # NaN equals NaN here: both runs saw the same NaN
        out.append(f"{where}: {a!r} != {b!r}")


# Measurements and provenance, not state: they may differ between two runs of the same training.
NOT_STATE = ("config", "versions")
NOT_STATE_TRAINER = ("recent_step_seconds",)


def state_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Where checkpoint payloads `a` and `b` differ in training state (empty: bitwise equal).

    Everything is compared except the config (a resumed run's may name other folders), the
    library versions and the measured step times.
    """
    out: list[str] = []
    keys = (set(a) | set(b)) - set(NOT_STATE)
    for key in sorted(keys):
        if key not in a or key not in b:
            out.append(f"{key}: in one checkpoint only")
        elif key == "trainer":
            left = {k: v for k, v in a[key].items() if k not in NOT_STATE_TRAINER}
            right = {k: v for k, v in b[key].items() if k not in NOT_STATE_TRAINER}
            _diff(left, right, key, out)
        else:
            _diff(a[key], b[key], key, out)
    return out


def checkpoint_path(run: Path, iteration: int) -> Path:
    """The trainer's periodic checkpoint of `iteration` in run folder `run`."""
    return run / "checkpoints" / f"iter_{iteration:08d}.pth"
