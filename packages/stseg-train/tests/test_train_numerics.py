"""Numerics: non-finite loss/gradient skips (C1, B5 single-process), all-ignored batches (C2),
the label-range guard (C3), out-of-memory skips, gradient accumulation and clipping."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from stseg_train.batches import BatchStream
from stseg_train.config import TrainConfig
from stseg_train.distributed import DistContext
from stseg_train.errors import NonFiniteError, TrainInputError, TrainRuntimeError
from stseg_train.loss import check_labels
from stseg_train.toy import toy_components
from stseg_train.trainer import Trainer


def _trainer(tmp_path: Path, **changes) -> tuple[Trainer, BatchStream]:
    config = dataclasses.replace(
        TrainConfig(
            dataset="synthetic",
            out=str(tmp_path),
            num_classes=4,
            batch_size=2,
            max_iter=10,
            tensorboard=False,
            progress=False,
        ),
        **changes,
    )
    parts = toy_components(config, DistContext())
    trainer = Trainer(config, DistContext(), parts, tmp_path)
    stream = BatchStream(parts.train_set, parts.collate, batch_size=config.batch_size, seed=1)
    return trainer, stream


def _params(trainer: Trainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_nan_loss_skips_the_step_and_leaves_parameters(tmp_path: Path, monkeypatch) -> None:
    trainer, stream = _trainer(tmp_path)
    trainer.step(stream)
    before = _params(trainer)
    monkeypatch.setenv("STSEG_TRAIN_FAULT", "nan:0:1")
    stats = trainer.step(stream)
    assert stats["skipped"] == 1.0 and trainer.state.nonfinite_skips == 1
    assert all(torch.equal(a, b) for a, b in zip(before, _params(trainer)))
    assert trainer.state.iteration == 2  # the batch was consumed; the schedule moves on
    trainer.step(stream)
    assert not all(torch.equal(a, b) for a, b in zip(before, _params(trainer)))


def test_nan_gradient_never_reaches_the_optimizer(tmp_path: Path) -> None:
    trainer, stream = _trainer(tmp_path)
    before = _params(trainer)
    handle = trainer.model[0].weight.register_hook(lambda g: g * float("nan"))
    trainer.step(stream)
    handle.remove()
    assert trainer.state.nonfinite_skips == 1
    assert all(torch.equal(a, b) for a, b in zip(before, _params(trainer)))


def test_too_many_consecutive_nonfinite_stops_with_exit_code_3(tmp_path: Path, monkeypatch) -> None:
    trainer, stream = _trainer(tmp_path, max_consecutive_nonfinite=3)
    monkeypatch.setenv("STSEG_TRAIN_FAULT", "nan:0:0,nan:0:1,nan:0:3,nan:0:4,nan:0:5")
    trainer.step(stream)
    trainer.step(stream)
    trainer.step(stream)  # a good step resets the count
    trainer.step(stream)
    trainer.step(stream)
    with pytest.raises(NonFiniteError, match=r"iteration 5: 3 consecutive non-finite.*toy") as info:
        trainer.step(stream)
    assert info.value.exit_code == 3


def test_nonfinite_run_writes_no_checkpoint_after_the_failure(tmp_path: Path, monkeypatch) -> None:
    from stseg_train.run import train

    config = TrainConfig(
        dataset="synthetic",
        out=str(tmp_path / "run"),
        num_classes=4,
        batch_size=2,
        max_iter=10,
        save_freq=2,
        max_consecutive_nonfinite=2,
        tensorboard=False,
        progress=False,
    )
    monkeypatch.setenv("STSEG_TRAIN_FAULT", "nan:0:4,nan:0:5")
    with pytest.raises(NonFiniteError):
        train(config, toy_components)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.pth"))
    assert names == ["iter_00000002.pth", "iter_00000004.pth"]


def test_all_ignored_batch_is_finite_and_skipped(tmp_path: Path) -> None:
    trainer, stream = _trainer(tmp_path)
    trainer.parts.train_set.labels[:] = 255
    before = _params(trainer)
    stats = trainer.step(stream)
    assert stats["loss"] == 0.0 and stats["skipped"] == 1.0
    assert trainer.state.empty_skips == 1 and trainer.state.nonfinite_skips == 0
    assert all(torch.equal(a, b) for a, b in zip(before, _params(trainer)))


def test_label_guard() -> None:
    config = TrainConfig(num_classes=20)
    with pytest.raises(TrainInputError, match=r"label 25 outside.*scene7"):
        check_labels(torch.tensor([0, 25, 3]), config, ["scene7"])
    with pytest.raises(TrainInputError, match="label -3"):
        check_labels(torch.tensor([-3]), config, ["s"])
    assert check_labels(torch.tensor([-1, 19, 255]), config, ["s"]).tolist() == [255, 19, 255]


def test_label_guard_in_training(tmp_path: Path) -> None:
    trainer, stream = _trainer(tmp_path)
    trainer.parts.train_set.labels[:, 0] = 25
    with pytest.raises(TrainInputError, match="label 25"):
        trainer.step(stream)


def test_out_of_memory_skips_and_caps(tmp_path: Path, monkeypatch) -> None:
    trainer, stream = _trainer(tmp_path, max_oom_skips_per_epoch=1)
    before = _params(trainer)
    monkeypatch.setenv("STSEG_TRAIN_FAULT", "oom:0:0,oom:0:1")
    assert trainer.step(stream)["skipped"] == 1.0
    assert trainer.state.oom_skips == 1
    assert all(torch.equal(a, b) for a, b in zip(before, _params(trainer)))
    with pytest.raises(TrainRuntimeError, match=r"out-of-memory skips.*max_points_per_batch"):
        trainer.step(stream)


def test_other_errors_are_not_swallowed(tmp_path: Path) -> None:
    trainer, stream = _trainer(tmp_path)

    def boom(model, batch):
        raise RuntimeError("a real bug")

    trainer.parts.forward = boom
    with pytest.raises(RuntimeError, match="a real bug"):
        trainer.step(stream)


def test_gradient_accumulation_equals_the_big_batch(tmp_path: Path) -> None:
    # iter_size 2 x batch 2 == one batch of 4, for a model without batch statistics and with
    # equal valid-point counts per batch (so the mean of the two means is the global mean).
    big, big_stream = _trainer(tmp_path / "a", batch_size=4, iter_size=1)
    small, small_stream = _trainer(tmp_path / "b", batch_size=2, iter_size=2)
    for trainer in (big, small):
        trainer.parts.train_set.labels[trainer.parts.train_set.labels == 255] = 0
        trainer.model[1] = torch.nn.Identity()
        trainer.params = list(trainer.model.parameters())
        trainer.optimizer.param_groups[0]["params"] = trainer.params
    big.step(big_stream)
    small.step(small_stream)
    assert small_stream.position.batch == 2 and big_stream.position.batch == 1
    for a, b in zip(big.model.parameters(), small.model.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_clipping_bounds_the_update(tmp_path: Path) -> None:
    trainer, stream = _trainer(
        tmp_path, clip_grad_norm=1e-3, momentum=0.0, weight_decay=0.0, lr=1.0
    )
    before = torch.cat([p.detach().reshape(-1).clone() for p in trainer.model.parameters()])
    trainer.step(stream)
    after = torch.cat([p.detach().reshape(-1) for p in trainer.model.parameters()])
    assert float((after - before).norm()) == pytest.approx(1e-3, rel=1e-3)
