"""`RunLock`: one training process at a time in a run folder.

Two `--resume RUN` at once would both write checkpoints into RUN, leaving a folder that mixes two
histories with every checksum still valid. The lock is an advisory `flock` on `RUN/.lock`, a small
JSON file naming the holder (pid, host, start time):

- held while the training runs, released (and the file removed) on exit; the kernel drops a
  `flock` when its process dies, however it dies, so a crash never leaves a live lock;
- a second process is refused at once with one line naming the holder;
- a lock file left by a dead process of this host (no flock held, its pid gone) is taken over with
  a warning; one written on another host, or by a live process that holds no flock (a filesystem
  without working `flock`), is refused, since its liveness cannot be checked from here.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from stseg_data.atomic import current_umask
from stseg_train.errors import TrainInputError

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"


class RunLockedError(TrainInputError):
    """Another process trains in this run folder (or may: its lock cannot be checked)."""


class RunLock:
    """Context manager holding the advisory lock of run folder `run` (which must exist)."""

    def __init__(self, run: str | os.PathLike[str]) -> None:
        self.run = Path(run)
        self.path = self.run / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock or raise `RunLockedError` naming its holder."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                holder = _read_holder(fd)
                os.close(fd)
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise RunLockedError(
                        f"{self.run}: another training runs in this folder "
                        f"({_describe(holder)}); wait for it to finish or stop it first"
                    ) from None
                raise
            # The file may have been removed (a holder released it) between open and flock: then
            # this lock guards nothing; try again on the file now at the path.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        try:
            self._check_previous_holder(_read_holder(fd))
        except BaseException:
            os.close(fd)
            raise
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and drop the lock (a no-op when not held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def _check_previous_holder(self, holder: dict | None) -> None:
        if not holder or holder.get("pid") == os.getpid():
            return
        pid, host = holder.get("pid"), holder.get("host")
        if host != socket.gethostname():
            raise RunLockedError(
                f"{self.path}: the run is locked by {_describe(holder)}, which cannot be checked "
                "from this host; if that process is gone, delete the lock file"
            )
        if isinstance(pid, int) and _alive(pid):
            raise RunLockedError(
                f"{self.path}: the run is locked by {_describe(holder)}, which is still running "
                "(this filesystem may not support flock); if it is not training here, delete the "
                "lock file"
            )
        log.warning(
            "%s: taking over a stale lock of %s (no such process)", self.path, _describe(holder)
        )


def _read_holder(fd: int) -> dict | None:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        record = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _describe(holder: dict | None) -> str:
    if not holder:
        return "a process that has not written its name yet"
    return f"pid {holder.get('pid')} on host {holder.get('host')}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
