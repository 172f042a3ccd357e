"""A checkpoint in a run whose pickle would run code (its sidecar matching, as an attacker would
make it) is refused as unsafe, never loaded, and resume falls back to the previous checkpoint."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import pytest
import torch

from stseg_train.checkpoint import CheckpointManager, load_checkpoint
from stseg_train.errors import CheckpointError, UnsafeCheckpointError


class _Gadget:
    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def _payload(iteration: int) -> dict:
    return {
        "state_dict": {"w": torch.ones(4)},
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


def _plant_gadget(path: Path, sentinel: Path, layout: str) -> None:
    if layout == "zip":
        torch.save({"state_dict": _Gadget(sentinel)}, path)
    else:
        path.write_bytes(pickle.dumps(_Gadget(sentinel), protocol=2))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    Path(str(path) + ".sha256").write_text(f"{digest}  {path.name}\n")


@pytest.mark.parametrize("layout", ["zip", "raw-pickle"])
def test_gadget_checkpoint_is_refused_and_resume_falls_back(tmp_path, layout):
    sentinel = tmp_path / "pwned"
    manager = CheckpointManager(tmp_path / "checkpoints", keep_last=3)
    manager.save(10, _payload(10))
    newest = manager.save(20, _payload(20))
    _plant_gadget(newest, sentinel, layout)

    with pytest.raises(UnsafeCheckpointError) as refused:
        load_checkpoint(newest)
    message = str(refused.value)
    assert message.startswith(f"{newest}: refused: not a safe checkpoint")
    assert "system" in message  # names what the pickle would call
    assert "weights_only=False" not in message and "corrupt" not in message
    assert isinstance(refused.value, CheckpointError)  # so resume falls back past it

    reports: list[str] = []
    payload, path = manager.load_latest_valid(reports.append)
    assert path.name == "iter_00000010.pth" and payload["iteration"] == 10
    assert len(reports) == 1 and "refused: not a safe checkpoint" in reports[0]
    assert not sentinel.exists()
