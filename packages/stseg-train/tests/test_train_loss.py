"""Class-weighted cross-entropy: weights from label counts, and the weighted loss by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stseg_train.config import TrainConfig, validate
from stseg_train.errors import TrainInputError
from stseg_train.loss import batch_loss, class_weights


def test_class_weights_inverse_sqrt_frequency_mean_one() -> None:
    w = class_weights(np.array([900, 100, 0]), 0.5)
    # frequencies 0.9 and 0.1 -> 0.9^-0.5 = 1.054, 0.1^-0.5 = 3.162, scaled to mean 1
    raw = np.array([0.9**-0.5, 0.1**-0.5])
    np.testing.assert_allclose(w[:2], raw / raw.mean(), rtol=1e-6)
    assert w[2] == 1.0  # absent class
    np.testing.assert_array_equal(class_weights(np.array([5, 7]), 0.0), [1.0, 1.0])
    np.testing.assert_array_equal(class_weights(np.zeros(3), 0.5), [1.0, 1.0, 1.0])


def test_weighted_batch_loss_matches_hand_computation() -> None:
    config = TrainConfig(num_classes=2)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 3.0]])
    labels = torch.tensor([0, 1, 1, config.ignore_label])
    weights = torch.tensor([1.0, 3.0])
    loss, valid, correct = batch_loss(logits, labels, config, weights)
    nll = [math.log(1 + math.exp(-2)), math.log(1 + math.exp(-1)), math.log(2)]
    expected = (1 * nll[0] + 3 * nll[1] + 3 * nll[2]) / (1 + 3 + 3)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert (valid, correct) == (3, 2)  # argmax ties go to class 0
    plain, _, _ = batch_loss(logits, labels, config)
    assert plain.item() == pytest.approx(sum(nll) / 3, rel=1e-6)


@pytest.mark.parametrize("key, value", [("class_balance", 1.5), ("voxel_labels", "vote")])
def test_bad_loss_and_label_options_are_refused(key: str, value: object) -> None:
    with pytest.raises(TrainInputError, match=key):
        validate(TrainConfig(**{key: value}))
