"""Optimizers and learning-rate schedules as the original work configured them.

SGD uses momentum 0.9, dampening 0.1 and weight decay 1e-4 by default; Adam is the alternative.
Schedules are pure functions of the iteration (`poly_factor`, `step_factor`, `exp_factor`) wrapped
in `LambdaLR`, so a scheduler's state is just its iteration count and resumes exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from stseg_train.config import TrainConfig
from stseg_train.errors import TrainInputError


def poly_factor(step: int, max_iter: int, power: float = 0.9) -> float:
    """(1 - step / (max_iter + 1)) ** power: 1 at step 0, close to 0 at max_iter."""
    return (1.0 - step / (max_iter + 1)) ** power


def step_factor(step: int, step_size: int, gamma: float = 0.1) -> float:
    """gamma ** floor(step / step_size): a staircase."""
    return gamma ** (step // step_size)


def exp_factor(step: int, step_size: int, gamma: float = 0.95) -> float:
    """gamma ** (step / step_size): smooth exponential decay."""
    return gamma ** (step / step_size)


def lr_factor_fn(config: TrainConfig) -> Callable[[int], float]:
    """The schedule of `config` as a function iteration -> multiplier of the base learning rate."""
    if config.scheduler == "poly":
        return lambda s: poly_factor(s, config.max_iter, config.poly_power)
    if config.scheduler == "step":
        return lambda s: step_factor(s, config.step_size, config.step_gamma)
    if config.scheduler == "exp":
        return lambda s: exp_factor(s, config.exp_step_size, config.exp_gamma)
    raise TrainInputError(f"unknown scheduler {config.scheduler!r} (poly, step or exp)")


def build_optimizer(
    config: TrainConfig, params: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    """SGD (momentum, dampening, weight decay) or Adam over `params`, at `config.lr`."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            dampening=config.dampening,
            weight_decay=config.weight_decay,
            foreach=True,  # one multi-tensor kernel per update instead of a loop over parameters
        )
    if config.optimizer == "adam":
        return torch.optim.Adam(
            params,
            lr=config.lr,
            betas=(config.adam_betas[0], config.adam_betas[1]),
            weight_decay=config.weight_decay,
            foreach=True,
        )
    raise TrainInputError(f"unknown optimizer {config.optimizer!r} (sgd or adam)")


def build_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration scheduler; call `.step()` once per optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor_fn(config))
