"""Atomic file output: write to a temporary file in the target folder, fsync, then rename.

A reader never sees a half-written file, and an existing file is replaced only by a complete new
one. On any error the temporary file is removed and the old file stays byte-identical.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal, overload

from stseg_data.errors import StsegInputError, StsegRuntimeError


@overload
def atomic_write(
    path: str | os.PathLike[str], mode: Literal["wb"] = ..., *, overwrite: bool = ...
) -> contextlib.AbstractContextManager[IO[bytes]]: ...
@overload
def atomic_write(
    path: str | os.PathLike[str], mode: Literal["w"], *, overwrite: bool = ...
) -> contextlib.AbstractContextManager[IO[str]]: ...
def atomic_write(
    path: str | os.PathLike[str], mode: str = "wb", *, overwrite: bool = True
) -> contextlib.AbstractContextManager[IO]:
    """Open a temporary file beside `path`; on a clean exit it replaces `path` atomically.

    `overwrite=False` refuses (StsegInputError) when `path` already exists. Errors while writing
    (disk full, ...) become a `StsegRuntimeError` naming the path and the errno; the temporary file
    is removed and any previous file at `path` is untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write supports modes 'wb' and 'w', not {mode!r}")
    return _atomic_write(Path(path), mode, overwrite)


@contextlib.contextmanager
def _atomic_write(target: Path, mode: str, overwrite: bool) -> Iterator[IO]:
    if not overwrite and target.exists():
        raise StsegInputError(f"{target}: already exists (pass --overwrite to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600 whatever the umask; the finished file gets the mode `open()` would
        # give it (0644 under umask 022), so a group or a web server can read outputs.
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise StsegRuntimeError(
            f"{target}: could not write ({error.strerror or error}, errno {error.errno}); "
            "any previous file there is unchanged"
        ) from error
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # Elsewhere the only way to read it is to set it; put it straight back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every filesystem allows opening a directory.
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
