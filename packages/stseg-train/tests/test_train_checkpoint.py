"""Checkpoint files: atomic writes (A3), corruption fallback (A5), retention (A6), no NaN (A7),
schema (A8), pickle refusal (E1)."""

from __future__ import annotations

import errno
import hashlib
import io
import os
from pathlib import Path

import pytest
import torch

from stseg_data.errors import StsegRuntimeError
from stseg_train import checkpoint as ckpt
from stseg_train.checkpoint import CheckpointManager, load_checkpoint, save_checkpoint
from stseg_train.errors import CheckpointError, NonFiniteError


def _payload(value: float = 1.0, iteration: int = 1) -> dict:
    return {
        "state_dict": {"w": torch.full((64, 64), value), "n": torch.tensor(3)},
        "model_name": "toy",
        "model_args": {},
        "config": {},
        "iteration": iteration,
        "epoch": 0,
        "batch_in_epoch": iteration,
        "world_size": 1,
        "optimizer": {},
        "scheduler": {},
        "rng": [],
    }


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip_and_sidecar(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "a.pth", _payload(2.0))
    side = Path(str(path) + ".sha256").read_text().split()
    assert side == [_sha(path), "a.pth"]
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["state_dict"]["w"], torch.full((64, 64), 2.0))
    assert loaded["train_schema_version"] == ckpt.SCHEMA_VERSION


@pytest.mark.parametrize("failure", ["half-then-raise", "enospc"])
def test_crash_during_write_keeps_previous(tmp_path: Path, monkeypatch, failure: str) -> None:
    path = save_checkpoint(tmp_path / "a.pth", _payload(1.0))
    before = _sha(path)
    real_save = torch.save

    def broken(obj, f, *args, **kwargs):
        if failure == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(errno.EIO, "simulated crash")

    monkeypatch.setattr(ckpt.torch, "save", broken)
    with pytest.raises((StsegRuntimeError, OSError)):
        save_checkpoint(path, _payload(5.0))
    assert _sha(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pth", "a.pth.sha256"]


def test_full_disk_in_atomic_write_names_the_path(tmp_path: Path, monkeypatch) -> None:
    path = save_checkpoint(tmp_path / "a.pth", _payload(1.0))
    before = _sha(path)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StsegRuntimeError, match=r"a\.pth.*errno 28"):
        save_checkpoint(path, _payload(5.0))
    monkeypatch.undo()
    assert _sha(path) == before
    assert load_checkpoint(path)["state_dict"]["w"][0, 0] == 1.0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "half":
        path.write_bytes(data[: len(data) // 2])
    elif how == "minus-one":
        path.write_bytes(data[:-1])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "bitflip":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0x01  # inside the 16 KiB tensor blob
        path.write_bytes(bytes(flipped))
    elif how == "no-sidecar":
        Path(str(path) + ".sha256").unlink()


@pytest.mark.parametrize("how", ["half", "minus-one", "empty", "bitflip", "no-sidecar"])
def test_corrupt_newest_falls_back_to_previous(tmp_path: Path, how: str) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2)
    manager.save(10, _payload(1.0, 10))
    newest = manager.save(20, _payload(2.0, 20))
    _corrupt(newest, how)
    messages: list[str] = []
    payload, path = manager.load_latest_valid(messages.append)
    assert path.name == "iter_00000010.pth" and payload["iteration"] == 10
    assert len(messages) == 1 and messages[0].startswith(f"corrupt: {newest}")


def test_no_valid_checkpoint_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2)
    assert manager.load_latest_valid() is None  # nothing there: fresh start is fine
    only = manager.save(10, _payload(1.0, 10))
    _corrupt(only, "half")
    with pytest.raises(CheckpointError, match=r"no valid checkpoint.*--restart-from-scratch"):
        manager.load_latest_valid(lambda _m: None)


def test_retention_keeps_newest_and_named(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path, keep_last=2)
    manager.save_named("best", _payload(0.5))
    for it in range(1, 6):
        manager.save(it, _payload(float(it), it))
    assert [it for it, _ in manager.periodic()] == [5, 4]
    assert (tmp_path / "best.pth").is_file() and (tmp_path / "best.pth.sha256").is_file()
    assert len(list(tmp_path.glob("*.sha256"))) == 3


def test_never_persist_nonfinite(tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path / "a.pth", _payload(1.0))
    before = _sha(good)
    bad = _payload(1.0)
    bad["state_dict"]["w"][3, 3] = float("nan")
    with pytest.raises(NonFiniteError, match=r"non-finite parameters.*first w") as info:
        save_checkpoint(good, bad)
    assert info.value.exit_code == 3
    assert _sha(good) == before


def test_schema_checks(tmp_path: Path) -> None:
    path = tmp_path / "f.pth"
    save_checkpoint(path, _payload())
    payload = load_checkpoint(path)
    payload["train_schema_version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="schema version 99"):
        load_checkpoint(path, verify=False)
    del payload["optimizer"]
    payload["train_schema_version"] = 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"lacks key.*optimizer"):
        load_checkpoint(path, verify=False)


class _Gadget:
    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (open, (self.sentinel, "w"))


def test_pickle_gadget_is_refused(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = _payload()
    payload["evil"] = _Gadget(str(sentinel))
    torch.save(payload, path)
    Path(str(path) + ".sha256").write_text(_sha(path) + "  evil.pth\n")
    with pytest.raises(
        CheckpointError, match=r"refused: not a safe checkpoint \(its pickle calls io\.open"
    ):
        load_checkpoint(path)
    assert not sentinel.exists()


def test_gadget_newest_checkpoint_is_refused_and_resume_falls_back(tmp_path: Path) -> None:
    # Its sidecar matches (as an attacker would make it): the refusal comes from the load itself.
    sentinel = tmp_path / "pwned"
    manager = CheckpointManager(tmp_path / "checkpoints", keep_last=3)
    manager.save(10, _payload(1.0, 10))
    newest = manager.save(20, _payload(2.0, 20))
    payload = _payload(2.0, 20)
    payload["evil"] = _Gadget(str(sentinel))
    torch.save(payload, newest)
    Path(str(newest) + ".sha256").write_text(_sha(newest) + f"  {newest.name}\n")
    reports: list[str] = []
    loaded, path = manager.load_latest_valid(reports.append)
    assert path.name == "iter_00000010.pth" and loaded["iteration"] == 10
    assert len(reports) == 1
    assert reports[0].startswith(f"{newest}: refused: not a safe checkpoint")
    assert "weights_only=False" not in reports[0] and "corrupt" not in reports[0]
    assert not sentinel.exists()
