"""The one output rule every stseg command follows, as checks to run before any work starts.

- An existing output (a file, or a folder with content) is refused unless the user said
  `--overwrite`: `refuse_existing`.
- A folder the command cannot write to (read-only, permission denied) is found before a long
  evaluation or training starts, not after: `check_writable`.
- An output of a known size that cannot fit on its filesystem is refused up front:
  `check_free_space`.

Refusals of existing outputs are `StsegInputError`s (exit 2); an unwritable or full folder is a
`StsegRuntimeError` (exit 1). Every message starts with the path that failed.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from stseg_data.errors import StsegInputError, StsegRuntimeError

OVERWRITE_HINT = "pass --overwrite to replace it"


def has_content(path: str | os.PathLike[str]) -> bool:
    """True for an existing file (or link), or a folder holding at least one entry."""
    target = Path(path)
    if target.is_dir() and not target.is_symlink():
        return any(target.iterdir())
    return target.exists() or target.is_symlink()


def refuse_existing(path: str | os.PathLike[str], overwrite: bool, *, hint: str = "") -> None:
    """Raise `StsegInputError` when `path` is an existing output and `overwrite` is False.

    An empty folder is not an output: a user may create it first. `hint` replaces the default
    advice ("pass --overwrite to replace it") where a command offers another way out.
    """
    if overwrite or not has_content(path):
        return
    kind = "folder is not empty" if Path(path).is_dir() else "already exists"
    raise StsegInputError(f"{path}: {kind} ({hint or OVERWRITE_HINT})")


def missing_folders(folder: str | os.PathLike[str]) -> list[Path]:
    """`folder` and its ancestors that do not exist yet, deepest first: what a command that fails
    half-way may remove again (it made them), and nothing else."""
    missing = []
    current = Path(folder).absolute()
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    return missing


def nearest_existing(path: str | os.PathLike[str]) -> Path:
    """`path` itself if it exists, else its closest existing ancestor (where it would be made)."""
    missing = missing_folders(path)
    return missing[-1].parent if missing else Path(path).absolute()


def check_writable(folder: str | os.PathLike[str]) -> None:
    """Raise `StsegRuntimeError` unless files can be created in `folder` (or where it would be made).

    Tries it for real (a probe file, removed at once) rather than trusting permission bits:
    root ignores them, and a read-only mount or a full disk shows only when one writes.
    """
    target = Path(folder)
    where = nearest_existing(target)
    if not where.is_dir():
        raise StsegInputError(f"{where}: is a file, not a folder (needed for {target})")
    try:
        fd, probe = tempfile.mkstemp(prefix=".stseg-write-check.", dir=where)
    except OSError as error:
        raise StsegRuntimeError(
            f"{target}: cannot write there ({describe_os_error(error)})"
        ) from error
    os.close(fd)
    os.unlink(probe)


def check_free_space(folder: str | os.PathLike[str], needed_bytes: int, what: str) -> None:
    """Raise `StsegRuntimeError` when the filesystem of `folder` has less than `needed_bytes` free.

    `what` names the output in the message ("a checkpoint", "the predictions").
    """
    where = nearest_existing(folder)
    free = shutil.disk_usage(where).free
    if free < needed_bytes:
        raise StsegRuntimeError(
            f"{folder}: not enough space for {what} (needs about {format_bytes(needed_bytes)}, "
            f"{format_bytes(free)} free)"
        )


def describe_os_error(error: OSError) -> str:
    """`strerror` and the errno's name, e.g. "Read-only file system, EROFS"."""
    name = errno.errorcode.get(error.errno or 0, "")
    text = error.strerror or str(error)
    return f"{text}, {name}" if name else text


def format_bytes(count: float) -> str:
    """A byte count for people: 512 B, 3.2 MiB, 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
