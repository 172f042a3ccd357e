"""``MinkowskiEngine.utils.gradcheck``: finite-difference gradient check of an autograd Function.

MinkowskiEngine 0.5.4's tests call ``gradcheck(fn, (feats, in_key, out_key, manager, ...))`` with
``fn`` an *instance* of a ``torch.autograd.Function`` and non-tensor arguments among the inputs;
its copy of PyTorch's check calls ``fn.apply(*inputs)``. PyTorch's own
`torch.autograd.gradcheck` accepts non-tensor inputs (only floating tensors that require grad are
perturbed), so this is that check with ``fn.apply`` as the function, same keyword defaults.
(MinkowskiEngine's copy imports ``torch._six``, gone in PyTorch 2, so it no longer imports there.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def gradcheck(
    func: Any,
    inputs: torch.Tensor | Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    check_sparse_nnz: bool = False,
    nondet_tol: float = 0.0,
    check_undefined_grad: bool = True,
    check_grad_dtypes: bool = False,
) -> bool:
    """True when analytic and numerical gradients of ``func.apply`` (or ``func``) agree."""
    call: Callable[..., Any] = func.apply if hasattr(func, "apply") else func
    return torch.autograd.gradcheck(
        call,
        inputs,  # type: ignore[arg-type]  # non-tensor entries are passed through untouched
        eps=eps,
        atol=atol,
        rtol=rtol,
        raise_exception=raise_exception,
        nondet_tol=nondet_tol,
        check_undefined_grad=check_undefined_grad,
        check_grad_dtypes=check_grad_dtypes,
        masked=True if check_sparse_nnz else None,
    )
