"""Helpers for the output-safety tests of every stseg command (run as a user would: subprocesses).

- `file_fingerprint(folder)`: sha256 and mtime of every file, so "no byte of the pre-existing
  data changed" is one equality;
- `error_line(output)`: the one `Error: ...` line a refused command prints (asserts there is
  exactly one and no traceback);
- `run_cli(argv, ...)`: run a command; with `constrained=(folder, "readonly" | "full")` it runs in
  a private mount namespace where `folder` is a read-only, or a nearly full (64 KiB), tmpfs. This
  works as root too (root ignores permission bits, not a read-only mount) and needs no privileges
  where unprivileged user namespaces are enabled (`unshare -rm`). `constrained_supported()` says
  whether this machine can do it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

Constraint = Literal["readonly", "full"]

# What a "full" folder holds: enough for a probe file, far too little for any real output.
FULL_TMPFS_SIZE = "64k"


def file_fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file under `folder`: equal before and after = untouched."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def error_line(output: str) -> str:
    """The one `Error: ...` line of a command's output (asserts there is exactly one, no traceback)."""
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def constrained_supported() -> bool:
    """True where `run_cli(..., constrained=...)` can mount a private tmpfs (unshare -rm)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def run_cli(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 300.0,
    constrained: tuple[Path, Constraint] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` and return its result (stdout and stderr as text, never raising on exit codes).

    `constrained=(folder, "readonly")` mounts an empty read-only tmpfs on `folder` (created here
    if missing) for the command alone; `"full"` mounts a 64 KiB writable one.
    """
    command = list(argv)
    if constrained is not None:
        folder, kind = constrained
        folder.mkdir(parents=True, exist_ok=True)
        options = "ro,size=4k" if kind == "readonly" else f"size={FULL_TMPFS_SIZE}"
        command = [
            "unshare",
            "-rm",
            "sh",
            "-c",
            'mount -t tmpfs -o "$1" tmpfs "$2" && shift 2 && exec "$@"',
            "sh",
            options,
            str(folder),
            *command,
        ]
    return subprocess.run(
        command,
        env=dict(env) if env is not None else dict(os.environ),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
