"""The arithmetic a network runs in: float32, or bf16 / fp16 under `torch.autocast`.

`stseg-models predict`, `stseg-train` (training, validation, `eval`, `export-benchmark`) and
ssen-instance take the same names (`--precision fp32|bf16|fp16`). Under autocast the sparse
convolutions run their GEMMs in the half dtype (kernel maps stay integer, weight gradients are
summed in float32, see `sparse.conv_function`) and torch runs batch norm in float32. bf16 pays off
on CPUs with AVX512-BF16 or AMX and on GPUs from Ampere on; fp16 is for GPUs (with a gradient
scaler when training), and slow on most CPUs.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from stseg_models.errors import PredictInputError

PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of `precision` (None for fp32); `PredictInputError` for another name."""
    if precision not in PRECISIONS:
        raise PredictInputError(
            f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    return PRECISIONS[precision]


def precision_context(device: torch.device | str, precision: str) -> AbstractContextManager[Any]:
    """`torch.autocast` on `device`'s type in `precision`'s dtype; nothing for fp32."""
    return autocast_context(device, autocast_dtype(precision))


def autocast_context(
    device: torch.device | str, dtype: torch.dtype | None
) -> AbstractContextManager[Any]:
    """`torch.autocast` on `device`'s type in `dtype`; nothing for None (fp32)."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
