"""Schedules as pure functions and the optimizers' settings."""

from __future__ import annotations

import pytest
import torch

from stseg_train.config import resolve_config
from stseg_train.optim import (
    build_optimizer,
    build_scheduler,
    exp_factor,
    poly_factor,
    step_factor,
)


def test_factor_values() -> None:
    assert poly_factor(0, 100) == 1.0
    assert poly_factor(50, 99, power=1.0) == pytest.approx(0.5)
    assert poly_factor(100, 100) == pytest.approx((1 / 101) ** 0.9)
    assert [step_factor(s, 10, 0.1) for s in (0, 9, 10, 25)] == pytest.approx([1, 1, 0.1, 0.01])
    assert exp_factor(0, 10) == 1.0
    assert exp_factor(20, 10, 0.5) == pytest.approx(0.25)


@pytest.mark.parametrize("scheduler", ["poly", "step", "exp"])
def test_scheduler_follows_its_factor(scheduler: str) -> None:
    config = resolve_config(
        "scannet", sets=[f"scheduler={scheduler}", "max_iter=20", "step_size=5", "exp_step_size=5"]
    )
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = build_optimizer(config, [param])
    sched = build_scheduler(config, optimizer)
    lrs = []
    for _ in range(12):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step()
    factor = {
        "poly": lambda s: poly_factor(s, 20, 0.9),
        "step": lambda s: step_factor(s, 5, 0.1),
        "exp": lambda s: exp_factor(s, 5, 0.95),
    }[scheduler]
    assert lrs == pytest.approx([0.1 * factor(s) for s in range(12)])


def test_sgd_is_the_original_and_adam_is_available() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    sgd = build_optimizer(resolve_config("scannet"), [param])
    group = sgd.param_groups[0]
    assert isinstance(sgd, torch.optim.SGD)
    assert (group["momentum"], group["dampening"], group["weight_decay"]) == (0.9, 0.1, 1e-4)
    adam = build_optimizer(resolve_config("scannet", sets=["optimizer=adam", "lr=0.001"]), [param])
    assert isinstance(adam, torch.optim.Adam)
    assert adam.param_groups[0]["lr"] == 0.001
