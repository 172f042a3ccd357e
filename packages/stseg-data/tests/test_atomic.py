import errno
import hashlib

import pytest

from stseg_data.atomic import atomic_write
from stseg_data.errors import StsegInputError, StsegRuntimeError


def test_replaces_file_only_when_complete(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as handle:
        handle.write(b"new")
        assert target.read_bytes() == b"old"  # not visible before the rename
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_error_mid_write_keeps_old_file_and_removes_temp(tmp_path):
    target = tmp_path / "ckpt.pt"
    target.write_bytes(b"good checkpoint")
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    with (
        pytest.raises(StsegRuntimeError, match=r"ckpt\.pt.*errno 28"),
        atomic_write(target) as handle,
    ):
        handle.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_non_os_error_propagates_and_cleans_up(tmp_path):
    target = tmp_path / "a.txt"
    with pytest.raises(KeyError), atomic_write(target, "w") as handle:
        handle.write("x")
        raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_refuses_overwrite_when_asked(tmp_path):
    target = tmp_path / "pred.ply"
    target.write_text("keep")
    with (
        pytest.raises(StsegInputError, match="already exists"),
        atomic_write(target, overwrite=False),
    ):
        pass
    assert target.read_text() == "keep"
