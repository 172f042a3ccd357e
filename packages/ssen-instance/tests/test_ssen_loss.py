"""Discriminative loss: hand-made embeddings with known terms, a slow reference, edge cases."""

from __future__ import annotations

import itertools

import pytest
import torch

from ssen_instance.errors import InstanceInputError
from ssen_instance.loss import DiscriminativeLossConfig, discriminative_loss


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64, requires_grad=True)


def test_hand_made_two_instances() -> None:
    # A: (0,0),(0.4,0) -> mean (0.2,0), each 0.2 away: hinge (0.2-0.1)^2 = 0.01 -> pull_A = 0.01.
    # B: two points at (0.6,0) -> pull_B = 0. Means 0.4 apart: push (1.0-0.4)^2 = 0.36 per ordered
    # pair, 2 pairs / (2*2*1) = 0.18. reg = (0.2 + 0.6) / 2 = 0.4.
    emb = _t([[0, 0], [0.4, 0], [0.6, 0], [0.6, 0]])
    inst = torch.tensor([1, 1, 2, 2])
    out = discriminative_loss(emb, inst)
    assert out["pull"].item() == pytest.approx(0.005)
    assert out["push"].item() == pytest.approx(0.18)
    assert out["reg"].item() == pytest.approx(0.4)
    assert out["loss"].item() == pytest.approx(0.005 + 10 * 0.18)
    cfg = DiscriminativeLossConfig(weight_pull=2.0, weight_push=0.0, weight_reg=1.0)
    assert discriminative_loss(emb, inst, config=cfg)["loss"].item() == pytest.approx(0.01 + 0.4)


def test_count_weighting() -> None:
    # A (2 points, pull 0.01), B (3 points at one spot, pull 0): p=1 weights 2:3, p=0 1:1.
    emb = _t([[0, 0], [0.4, 0], [5, 0], [5, 0], [5, 0]])
    inst = torch.tensor([3, 3, 7, 7, 7])
    assert discriminative_loss(emb, inst)["pull"].item() == pytest.approx(0.01 * 2 / 5)
    cfg = DiscriminativeLossConfig(count_power=0.0)
    assert discriminative_loss(emb, inst, config=cfg)["pull"].item() == pytest.approx(0.005)
    assert discriminative_loss(emb, inst)["push"].item() == 0.0  # means 4.8 apart > 1.0


def test_within_margins_is_zero_and_background_ignored() -> None:
    emb = _t([[0, 0], [0.05, 0], [3, 3], [3.05, 3], [100, -100]])
    inst = torch.tensor([1, 1, 2, 2, 0])  # the far-away background row takes no part
    out = discriminative_loss(emb, inst)
    assert out["pull"].item() == 0.0 and out["push"].item() == 0.0


def test_single_instance_and_no_instance() -> None:
    emb = _t([[0, 0], [0.4, 0]])
    one = discriminative_loss(emb, torch.tensor([4, 4]))
    assert one["push"].item() == 0.0 and one["pull"].item() == pytest.approx(0.01)
    none = discriminative_loss(emb, torch.tensor([0, -1]))
    assert none["loss"].item() == 0.0
    none["loss"].backward()
    assert emb.grad is not None and torch.equal(emb.grad, torch.zeros_like(emb))


def test_one_point_instance_has_finite_gradient() -> None:
    emb = _t([[0, 0], [0.2, 0.1]])
    out = discriminative_loss(emb, torch.tensor([1, 2]))
    out["loss"].backward()
    assert torch.isfinite(emb.grad).all()


def test_batch_scenes_are_independent() -> None:
    # Same instance id in two scenes at the same place: not pushed apart, not pooled.
    emb = _t([[0, 0], [0, 0], [0.1, 0], [0.1, 0]])
    out = discriminative_loss(emb, torch.tensor([1, 1, 1, 1]), batch=torch.tensor([0, 0, 1, 1]))
    assert out["loss"].item() == 0.0
    # Per-scene averaging: scene 0 has pull 0.01, scene 1 none -> mean over scenes with instances.
    emb2 = _t([[0, 0], [0.4, 0], [9, 9]])
    out2 = discriminative_loss(emb2, torch.tensor([1, 1, 0]), batch=torch.tensor([0, 0, 1]))
    assert out2["pull"].item() == pytest.approx(0.01)


def _reference(emb: torch.Tensor, inst: torch.Tensor, cfg: DiscriminativeLossConfig) -> float:
    ids = sorted({int(i) for i in inst if i > 0})
    means = {k: emb[inst == k].mean(0) for k in ids}
    pulls, weights = [], []
    for k in ids:
        pts = emb[inst == k]
        d = [max(0.0, float((p - means[k]).norm()) - cfg.delta_pull) ** 2 for p in pts]
        pulls.append(sum(d) / len(d))
        weights.append(len(d) ** cfg.count_power)
    pull = sum(w * p for w, p in zip(weights, pulls)) / sum(weights)
    push = 0.0
    for a, b in itertools.permutations(ids, 2):
        push += max(0.0, 2 * cfg.delta_push - float((means[a] - means[b]).norm())) ** 2
    k = len(ids)
    push = push / (2 * k * (k - 1)) if k > 1 else 0.0
    reg = sum(float(m.norm()) for m in means.values()) / k
    return cfg.weight_pull * pull + cfg.weight_push * push + cfg.weight_reg * reg


@pytest.mark.parametrize("seed", range(5))
def test_matches_slow_reference(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    emb = torch.rand(60, 3, generator=g, dtype=torch.float64) * 1.5
    inst = torch.randint(0, 6, (60,), generator=g)
    cfg = DiscriminativeLossConfig(weight_reg=0.3, count_power=0.5 + seed / 4)
    got = discriminative_loss(emb, inst, config=cfg)["loss"].item()
    assert got == pytest.approx(_reference(emb, inst, cfg), rel=1e-9)


def test_bad_input() -> None:
    emb = torch.zeros(3, 2)
    with pytest.raises(InstanceInputError, match="NaN"):
        discriminative_loss(torch.tensor([[0.0, float("nan")]]), torch.tensor([1]))
    with pytest.raises(InstanceInputError, match="instances"):
        discriminative_loss(emb, torch.tensor([1, 1]))
    with pytest.raises(InstanceInputError, match=r"\[N, D\]"):
        discriminative_loss(torch.zeros(3), torch.tensor([1, 1, 1]))
