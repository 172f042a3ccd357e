"""MinkowskiFunctional: ``torch.nn.functional`` on the features of a SparseTensor or TensorField.

Exported as ``MinkowskiFunctional`` (``ME.MinkowskiFunctional.relu(x)``), with every function of
MinkowskiEngine 0.5.4's module. Pointwise functions return a tensor of the input's kind on its
coordinates; the losses take the input's features and a plain target tensor and return the loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from stseg_models.sparse.wrap import require_sparse_like, rewrap

POINTWISE = [
    "threshold", "relu", "hardtanh", "hardswish", "relu6", "elu", "selu", "celu", "leaky_relu", "prelu", "rrelu", "glu", "gelu", "logsigmoid", "hardshrink", "tanhshrink", "softsign", "softplus", "softmin", "softmax", "softshrink", "gumbel_softmax", "log_softmax", "tanh", "sigmoid", "hardsigmoid", "silu", "batch_norm", "normalize", "linear", "dropout", "alpha_dropout",
]  # fmt: skip
LOSSES = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "poisson_nll_loss", "cross_entropy", "hinge_embedding_loss", "kl_div", "l1_loss", "mse_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss", "multi_margin_loss", "nll_loss", "smooth_l1_loss", "soft_margin_loss",
]  # fmt: skip


def _pointwise(name: str) -> Callable[..., Any]:
    fn = getattr(F, name)

    def apply(input: Any, *args: Any, **kwargs: Any) -> Any:
        require_sparse_like(input, f"MinkowskiFunctional.{name}")
        return rewrap(input, fn(input.F, *args, **kwargs))

    apply.__name__ = apply.__qualname__ = name
    apply.__doc__ = f"``torch.nn.functional.{name}`` on the features; same coordinates."
    return apply


def _loss(name: str) -> Callable[..., torch.Tensor]:
    fn = getattr(F, name)

    def apply(input: Any, target: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        require_sparse_like(input, f"MinkowskiFunctional.{name}")
        return fn(input.F, target, *args, **kwargs)

    apply.__name__ = apply.__qualname__ = name
    apply.__doc__ = f"``torch.nn.functional.{name}(input.F, target, ...)``."
    return apply


threshold = _pointwise("threshold")
relu = _pointwise("relu")
hardtanh = _pointwise("hardtanh")
hardswish = _pointwise("hardswish")
relu6 = _pointwise("relu6")
elu = _pointwise("elu")
selu = _pointwise("selu")
celu = _pointwise("celu")
leaky_relu = _pointwise("leaky_relu")
prelu = _pointwise("prelu")
rrelu = _pointwise("rrelu")
glu = _pointwise("glu")
gelu = _pointwise("gelu")
logsigmoid = _pointwise("logsigmoid")
hardshrink = _pointwise("hardshrink")
tanhshrink = _pointwise("tanhshrink")
softsign = _pointwise("softsign")
softplus = _pointwise("softplus")
softmin = _pointwise("softmin")
softmax = _pointwise("softmax")
softshrink = _pointwise("softshrink")
gumbel_softmax = _pointwise("gumbel_softmax")
log_softmax = _pointwise("log_softmax")
tanh = _pointwise("tanh")
sigmoid = _pointwise("sigmoid")
hardsigmoid = _pointwise("hardsigmoid")
silu = _pointwise("silu")
batch_norm = _pointwise("batch_norm")
normalize = _pointwise("normalize")
linear = _pointwise("linear")
dropout = _pointwise("dropout")
alpha_dropout = _pointwise("alpha_dropout")

binary_cross_entropy = _loss("binary_cross_entropy")
binary_cross_entropy_with_logits = _loss("binary_cross_entropy_with_logits")
poisson_nll_loss = _loss("poisson_nll_loss")
cross_entropy = _loss("cross_entropy")
hinge_embedding_loss = _loss("hinge_embedding_loss")
kl_div = _loss("kl_div")
l1_loss = _loss("l1_loss")
mse_loss = _loss("mse_loss")
multilabel_margin_loss = _loss("multilabel_margin_loss")
multilabel_soft_margin_loss = _loss("multilabel_soft_margin_loss")
multi_margin_loss = _loss("multi_margin_loss")
nll_loss = _loss("nll_loss")
smooth_l1_loss = _loss("smooth_l1_loss")
soft_margin_loss = _loss("soft_margin_loss")

__all__ = [*POINTWISE, *LOSSES]
