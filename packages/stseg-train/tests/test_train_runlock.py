"""`RunLock`: one process per run folder, holder named, stale locks of dead processes taken over."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys

import pytest

from stseg_train.runlock import LOCK_NAME, RunLock, RunLockedError

_TRY_LOCK = (
    "import sys\n"
    "from stseg_train.runlock import RunLock, RunLockedError\n"
    "try:\n"
    "    RunLock(sys.argv[1]).acquire()\n"
    "except RunLockedError as error:\n"
    "    print(error); sys.exit(2)\n"
    "print('acquired')\n"
)


def _try_lock_elsewhere(run) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _TRY_LOCK, str(run)], capture_output=True, text=True, timeout=60
    )


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid  # reaped: no such process any more (reuse within the test is negligible)


def test_holder_is_recorded_and_second_process_refused(tmp_path):
    with RunLock(tmp_path):
        record = json.loads((tmp_path / LOCK_NAME).read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
        other = _try_lock_elsewhere(tmp_path)
        assert other.returncode == 2
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in other.stdout
        assert "another training runs in this folder" in other.stdout
    assert not (tmp_path / LOCK_NAME).exists()  # released and removed on exit
    assert _try_lock_elsewhere(tmp_path).stdout.strip() == "acquired"


def test_lock_is_released_when_the_holder_dies(tmp_path):
    # The child takes the lock and exits without releasing: the kernel drops the flock, the file
    # with the dead pid stays behind, and the next process takes it over.
    script = "import sys, os\nfrom stseg_train.runlock import RunLock\nRunLock(sys.argv[1]).acquire()\nos._exit(0)\n"
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=60)
    assert (tmp_path / LOCK_NAME).exists()
    assert _try_lock_elsewhere(tmp_path).stdout.strip() == "acquired"


def test_stale_lock_of_dead_pid_taken_over_with_warning(tmp_path, caplog):
    dead = _dead_pid()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
    with caplog.at_level(logging.WARNING), RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"taking over a stale lock of pid {dead}" in caplog.text


def test_lock_file_of_a_live_process_without_flock_is_refused(tmp_path):
    # A live pid in the file but no flock held: a filesystem where flock does nothing. Refuse.
    (tmp_path / LOCK_NAME).write_text(
        json.dumps({"pid": os.getppid(), "host": socket.gethostname()})
    )
    with pytest.raises(RunLockedError, match="which is still running"):
        RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getppid()  # untouched


def test_lock_from_another_host_is_refused(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example"}))
    with pytest.raises(RunLockedError, match="cannot be checked from this host"):
        RunLock(tmp_path).acquire()


def test_lock_file_mode_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with RunLock(tmp_path):
            mode = stat.S_IMODE((tmp_path / LOCK_NAME).stat().st_mode)
    finally:
        os.umask(old)
    assert mode == 0o640
