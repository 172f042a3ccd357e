"""stseg-train's public API: every exported name resolves, and a task's loss and on_finish hooks
(`Components.loss`, `Components.on_finish`) are what the trainer runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

import stseg_train
from stseg_train.checkpoint import load_checkpoint
from stseg_train.options import ToyOptions
from stseg_train.toy import toy_components

CALLS: dict[str, int] = {"loss": 0, "finish": 0}


def test_every_exported_name_resolves() -> None:
    for name in stseg_train.__all__:
        assert getattr(stseg_train, name) is not None, name
    assert stseg_train.validate_config is stseg_train.config.validate  # type: ignore[attr-defined]


def _config(out: Path) -> stseg_train.TrainConfig:
    return stseg_train.TrainConfig(
        dataset="synthetic", out=str(out), num_classes=4, batch_size=2, iter_size=2, max_iter=4,
        save_freq=2, val_freq=1000, tensorboard=False, progress=False, threads=1,
        toy=ToyOptions(scenes=6, points=32),
    )  # fmt: skip


def _doubled_cross_entropy(outputs: torch.Tensor, batch: dict[str, Any]) -> stseg_train.StepLoss:
    CALLS["loss"] += 1
    labels = batch["labels"].to(outputs.device)
    loss = torch.nn.functional.cross_entropy(outputs, labels, ignore_index=255)
    return stseg_train.StepLoss(loss=2.0 * loss, valid=int((labels != 255).sum()))


def _hooked(config: stseg_train.TrainConfig, ctx: stseg_train.DistContext) -> Any:
    parts = toy_components(config, ctx)

    def finish(model: torch.nn.Module) -> None:
        CALLS["finish"] += 1
        torch.save(model.state_dict(), Path(config.out) / "finished.pt")

    return dataclasses.replace(parts, loss=_doubled_cross_entropy, on_finish=finish)


def test_the_loss_hook_replaces_cross_entropy_and_on_finish_runs_once(tmp_path: Path) -> None:
    # SGD without weight decay or momentum: twice the loss is twice the step, so the hooked run
    # at lr equals the default run at 2 x lr, and differs from the default run at lr.
    plain = dict(optimizer="sgd", momentum=0.0, dampening=0.0, weight_decay=0.0)
    config = dataclasses.replace(_config(tmp_path / "hooked"), lr=0.05, **plain)
    stseg_train.train(config, _hooked)
    assert CALLS == {"loss": 8, "finish": 1}  # 4 steps x 2 batches; once, at the end
    double = dataclasses.replace(_config(tmp_path / "double"), lr=0.1, **plain)
    same = dataclasses.replace(_config(tmp_path / "same"), lr=0.05, **plain)
    stseg_train.train(double, toy_components)
    stseg_train.train(same, toy_components)
    final = {n: load_checkpoint(tmp_path / n / "checkpoints" / "final.pth")["state_dict"]
             for n in ("hooked", "double", "same")}  # fmt: skip
    weights = [k for k in final["hooked"] if k.endswith("weight")]
    for key in weights:
        assert torch.allclose(final["hooked"][key], final["double"][key], atol=1e-6), key
    assert any(not torch.allclose(final["hooked"][k], final["same"][k]) for k in weights)
    exported = torch.load(tmp_path / "hooked" / "finished.pt", weights_only=True)
    for key, value in final["hooked"].items():
        assert torch.equal(value, exported[key]), key
