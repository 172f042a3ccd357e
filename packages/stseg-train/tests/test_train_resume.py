"""Exact continuation (A1, A2), world-size changes (B8-like), refusing to clobber a run (H3)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from stseg_train.checkpoint import CheckpointManager
from stseg_train.config import TrainConfig
from stseg_train.errors import TrainInputError
from stseg_train.options import ToyOptions
from stseg_train.run import prepare_run_dir, train, worker
from stseg_train.toy import toy_components


def _config(out: Path, **changes) -> TrainConfig:
    base = TrainConfig(
        dataset="synthetic",
        out=str(out),
        num_classes=4,
        batch_size=3,
        max_iter=12,
        save_freq=2,
        val_freq=1000,
        keep_last=3,
        tensorboard=False,
        progress=False,
        toy=ToyOptions(scenes=10, points=48),
        # Bitwise equality needs the same CPU thread count in every process: float reductions are
        # split by thread, and pytest's process may have changed torch's default (nox sets
        # OMP_NUM_THREADS=2, other tests call torch.set_num_threads(1)).
        threads=1,
    )
    return dataclasses.replace(base, **changes)


def _run(config: TrainConfig, resume: bool, until: int | None = None):
    seen: list[tuple[int, float, tuple[str, ...]]] = []
    if not resume:
        prepare_run_dir(config, resume=False)
    state = worker(
        config,
        toy_components,
        resume,
        on_step=lambda i, loss, n: seen.append((i, loss, tuple(n))),
        until=until,
    )
    if until is not None:
        return state, None, seen
    final = torch.load(Path(config.out) / "checkpoints" / "final.pth", weights_only=True)
    return state, final, seen


@pytest.mark.parametrize("stop_at", [3, 5])  # 10 scenes, batch 3: 3 batches per epoch
def test_k_plus_resume_plus_k_equals_2k(tmp_path: Path, stop_at: int) -> None:
    _, full, full_seen = _run(_config(tmp_path / "full"), resume=False)
    part = _config(tmp_path / "part")
    _run(part, resume=False, until=stop_at)
    assert not (tmp_path / "part" / "checkpoints" / "final.pth").exists()
    # Fresh objects with wrong values everywhere; only the checkpoint may decide (A1).
    torch.manual_seed(999)
    state, final, resumed_seen = _run(part, resume=True)
    assert state.iteration == 12
    for key, value in full["state_dict"].items():
        assert torch.equal(value, final["state_dict"][key]), key
    assert full["optimizer"]["state"].keys() == final["optimizer"]["state"].keys()
    for index, slot in full["optimizer"]["state"].items():
        assert torch.equal(
            slot["momentum_buffer"], final["optimizer"]["state"][index]["momentum_buffer"]
        )
    assert full["scheduler"]["last_epoch"] == final["scheduler"]["last_epoch"] == 12
    assert (full["epoch"], full["batch_in_epoch"]) == (final["epoch"], final["batch_in_epoch"])
    # Same losses and the same samples, in the same order, with no repeats or skips.
    assert full_seen[stop_at:] == resumed_seen


def test_restore_sets_every_piece_of_state(tmp_path: Path) -> None:
    config = _config(tmp_path / "r", max_iter=5, save_freq=5)
    prepare_run_dir(config, resume=False)
    worker(config, toy_components, False)
    payload, _ = CheckpointManager(tmp_path / "r" / "checkpoints").load_latest_valid()
    from stseg_train.trainer import Trainer

    parts = toy_components(
        dataclasses.replace(config, lr=999.0),
        __import__("stseg_train.distributed").distributed.DistContext(),
    )
    trainer = Trainer(
        dataclasses.replace(config, lr=999.0),
        __import__("stseg_train.distributed").distributed.DistContext(),
        parts,
        config.out,
    )
    torch.manual_seed(12345)
    trainer.restore(payload)
    assert trainer.state.iteration == 5
    assert trainer.scheduler.last_epoch == 5
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(
        payload["scheduler"]["_last_lr"][0]
    )
    assert (trainer.state.position.epoch, trainer.state.position.batch) == (
        payload["epoch"],
        payload["batch_in_epoch"],
    )
    assert torch.equal(torch.get_rng_state(), payload["rng"][0]["torch"])


def test_new_run_refuses_existing_out(tmp_path: Path) -> None:
    config = _config(tmp_path / "run", max_iter=2)
    train(config, toy_components)
    before = (tmp_path / "run" / "checkpoints" / "final.pth").read_bytes()
    with pytest.raises(TrainInputError, match=r"already exists.*--resume"):
        train(config, toy_components)
    assert (tmp_path / "run" / "checkpoints" / "final.pth").read_bytes() == before


def test_resume_checks_identity_and_run_dir(tmp_path: Path) -> None:
    config = _config(tmp_path / "run", max_iter=2)
    train(config, toy_components)
    with pytest.raises(TrainInputError, match="model: run has"):
        train(dataclasses.replace(config, model="Other"), toy_components, resume=True)
    with pytest.raises(TrainInputError, match="not a training run"):
        train(_config(tmp_path / "nothing"), toy_components, resume=True)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["max_iter"] == 2 and saved["model"] == config.model


def test_world_size_change_mid_epoch_is_refused(tmp_path: Path) -> None:
    config = _config(tmp_path / "run", max_iter=2, save_freq=2)
    train(config, toy_components)
    payload, _ = CheckpointManager(tmp_path / "run" / "checkpoints").load_latest_valid()
    assert payload["batch_in_epoch"] != 0
    from stseg_train.distributed import DistContext
    from stseg_train.trainer import Trainer

    payload["world_size"] = 2
    trainer = Trainer(config, DistContext(), toy_components(config, DistContext()), config.out)
    with pytest.raises(TrainInputError, match="mid-epoch by 2 process"):
        trainer.restore(payload)


_CHILD = """
import dataclasses, json, sys
from stseg_train.config import config_from_dict
from stseg_train.run import prepare_run_dir, worker
from stseg_train.toy import toy_components
config = config_from_dict(json.loads(sys.argv[1]))
resume = sys.argv[2] == "resume"
if not resume:
    prepare_run_dir(config, resume=False)
worker(config, toy_components, resume, until=int(sys.argv[3]) if len(sys.argv) > 3 else None)
"""


@pytest.mark.slow
def test_resume_in_a_fresh_process_is_exact(tmp_path: Path) -> None:
    import subprocess
    import sys

    _, full, _ = _run(_config(tmp_path / "full"), resume=False)
    part = _config(tmp_path / "part")
    blob = json.dumps(part.to_dict())
    subprocess.run([sys.executable, "-c", _CHILD, blob, "new", "4"], check=True, timeout=100)
    subprocess.run([sys.executable, "-c", _CHILD, blob, "resume"], check=True, timeout=100)
    final = torch.load(tmp_path / "part" / "checkpoints" / "final.pth", weights_only=True)
    for key, value in full["state_dict"].items():
        assert torch.equal(value, final["state_dict"][key]), key
    assert final["trainer"]["recent_losses"] == full["trainer"]["recent_losses"]


def test_same_seed_same_weights_other_seed_other_stream(tmp_path: Path) -> None:
    _, a, seen_a = _run(_config(tmp_path / "a", max_iter=4), resume=False)
    _, b, seen_b = _run(_config(tmp_path / "b", max_iter=4), resume=False)
    _, c, seen_c = _run(_config(tmp_path / "c", max_iter=4, seed=7), resume=False)
    assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())
    assert seen_a == seen_b and seen_a != seen_c
    assert not torch.equal(a["state_dict"]["0.weight"], c["state_dict"]["0.weight"])


def test_sigterm_saves_the_current_step_and_exits_4(tmp_path: Path) -> None:
    import os
    import signal

    from stseg_train.checkpoint import load_checkpoint
    from stseg_train.trainer import Preempted

    _, full, _ = _run(_config(tmp_path / "full"), resume=False)
    config = _config(tmp_path / "run", save_freq=100)
    prepare_run_dir(config, resume=False)

    def preempt(iteration: int, _loss: float, _names: list[str]) -> None:
        if iteration == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Preempted, match="iteration 4") as info:
        worker(config, toy_components, False, on_step=preempt)
    assert info.value.exit_code == 4
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "iter_00000004.pth")["iteration"] == 4
    _, final, _ = _run(config, resume=True)
    assert all(torch.equal(v, final["state_dict"][k]) for k, v in full["state_dict"].items())
