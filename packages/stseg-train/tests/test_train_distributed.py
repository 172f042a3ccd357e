"""Two gloo processes on CPU: equivalence with one process (B1), lockstep out-of-memory (B4) and
non-finite (B5) handling. Each test spawns real worker processes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from stseg_train.config import TrainConfig
from stseg_train.distributed import WorkerFailed
from stseg_train.options import ToyOptions
from stseg_train.run import train
from stseg_train.toy import toy_components

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _config(out: Path, **changes) -> TrainConfig:
    base = TrainConfig(
        dataset="synthetic",
        out=str(out),
        num_classes=4,
        batch_size=2,
        max_iter=5,
        save_freq=1,
        val_freq=1000,
        keep_last=10,
        lr=0.05,
        tensorboard=False,
        progress=False,
        dist_timeout_s=30.0,
        # No batch norm and no ignored points: per-rank means then average to the global mean.
        toy=ToyOptions(scenes=8, points=32, bn=False, ignore=0.0),
    )
    return dataclasses.replace(base, **changes)


def _final(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "final.pth", weights_only=True)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> Path:
    """An uninterrupted 2-process run of 5 steps."""
    run = tmp_path_factory.mktemp("dist") / "two"
    train(_config(run, batch_size=2), toy_components, procs=2)
    return run


def test_two_processes_match_one_process_on_the_global_batch(
    tmp_path: Path, two_process_run: Path
) -> None:
    train(_config(tmp_path / "one", batch_size=4), toy_components)
    one, two = _final(tmp_path / "one"), _final(two_process_run)
    assert two["world_size"] == 2
    digests = two["trainer"]["rank_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]  # identical parameters on both ranks
    for key, value in one["state_dict"].items():
        assert float((value - two["state_dict"][key]).abs().max()) < 1e-6, key
    losses_one = [loss for _, loss in one["trainer"]["recent_losses"]]
    losses_two = [loss for _, loss in two["trainer"]["recent_losses"]]
    assert losses_two == pytest.approx(losses_one, abs=1e-6)


def test_out_of_memory_on_one_rank_is_skipped_on_both(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STSEG_TRAIN_FAULT", "oom:1:2")
    train(_config(tmp_path / "run"), toy_components, procs=2)
    final = _final(tmp_path / "run")
    assert final["iteration"] == 5 and final["trainer"]["oom_skips"] == 1
    digests = final["trainer"]["rank_digests"]
    assert digests[0] == digests[1]


def test_nonfinite_on_one_rank_stops_all_with_code_3(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("STSEG_TRAIN_FAULT", "nan:1:2")
    with pytest.raises(WorkerFailed) as info:
        train(_config(tmp_path / "run", max_consecutive_nonfinite=1), toy_components, procs=2)
    assert info.value.exit_code == 3
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.pth"))
    assert names == ["iter_00000001.pth", "iter_00000002.pth"]


def test_killed_worker_then_relaunch_gives_the_uninterrupted_result(
    tmp_path: Path, two_process_run: Path, monkeypatch
) -> None:
    # B2 (with spawned workers instead of torchrun): rank 1 dies right after step 3; the last
    # checkpoint is at step 2; relaunching the same command resumes there and ends bit-identical.
    config = _config(tmp_path / "run", batch_size=2, save_freq=2)
    monkeypatch.setenv("STSEG_TRAIN_FAULT", "exit:1:3")
    with pytest.raises(WorkerFailed) as info:
        train(config, toy_components, procs=2)
    assert info.value.exit_code == 13
    assert not (tmp_path / "run" / "checkpoints" / "final.pth").exists()
    monkeypatch.delenv("STSEG_TRAIN_FAULT")
    train(config, toy_components, procs=2, resume=True)
    resumed, reference = _final(tmp_path / "run"), _final(two_process_run)
    for key, value in reference["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
