"""Fused gather-GEMM-scatter sparse convolution kernels in Triton (CUDA), and when to use them.

`use_triton(features)` is the engine's switch: True only for a CUDA tensor of float32, float16 or
bfloat16 when Triton imports and ``STSEG_TRITON`` is not ``0`` / ``false`` / ``off`` / ``no``.
CPU tensors never take this path in a model: Triton compiles for GPUs, and its interpreter
(``TRITON_INTERPRET=1``, set before Triton is first imported) runs the same kernels one program
at a time in NumPy, which the tests use to check them on CPU and nothing else should.

The kernels (`kernels`), their neighbour tables (`tables`) and the autograd function
(`function.TritonSparseConvolution`; `triton_conv_forward` / `triton_conv_backward` with the
signatures of `conv_function.conv_forward` / `conv_backward`) import Triton, so they load lazily:
importing this package costs nothing when Triton is absent.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

import torch

ENV_VAR = "STSEG_TRITON"
SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_OFF = ("0", "false", "off", "no")
_LAZY = {
    "TritonSparseConvolution": "function",
    "triton_conv": "function",
    "triton_conv_forward": "function",
    "triton_conv_backward": "function",
}


def enabled_by_env(environ: Mapping[str, str] | None = None) -> bool:
    """False when ``STSEG_TRITON`` says off (``0``, ``false``, ``off``, ``no``; any case)."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return value.strip().lower() not in _OFF


def interpreting(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``TRITON_INTERPRET`` asks for Triton's CPU interpreter (read by Triton at import)."""
    value = (os.environ if environ is None else environ).get("TRITON_INTERPRET", "")
    return value.strip().lower() in ("1", "true", "on", "yes")


@lru_cache(maxsize=1)
def triton_import_error() -> str:
    """Why ``import triton`` fails ("" when it imports); tried once per process."""
    try:
        importlib.import_module("triton")
        importlib.import_module("triton.language")
    except Exception as exc:  # a broken install can raise more than ImportError
        return f"{type(exc).__name__}: {exc}"
    return ""


def triton_available(device: torch.device | str) -> bool:
    """Whether the kernels can run on `device`: Triton imports and the device is CUDA, or the
    device is the CPU and Triton's interpreter is on (tests only)."""
    kind = torch.device(device).type
    if kind == "cuda":
        ok = torch.cuda.is_available()
    elif kind == "cpu":
        ok = interpreting()
    else:
        ok = False
    return ok and not triton_import_error()


@cache
def _capability(index: int) -> tuple[int, int]:
    major, minor = torch.cuda.get_device_capability(index)
    return major, minor


def dtype_supported(device: torch.device, dtype: torch.dtype) -> bool:
    """tl.dot on this CUDA device takes `dtype`: fp32 / fp16 from compute capability 7.0 (Volta),
    bf16 from 8.0 (Ampere; older devices have no bf16 tensor cores)."""
    if dtype not in SUPPORTED_DTYPES:
        return False
    index = device.index if device.index is not None else torch.cuda.current_device()
    return _capability(index) >= ((8, 0) if dtype == torch.bfloat16 else (7, 0))


def use_triton(features: torch.Tensor) -> bool:
    """The engine's switch: Triton kernels for these features (CUDA, fp32/fp16/bf16, not disabled).

    Never True on CPU, even with the interpreter on: interpreted kernels are a correctness check,
    orders of magnitude slower than the torch path. Checks the cheap conditions first, so a CPU
    or float64 call never imports Triton.
    """
    return (
        features.device.type == "cuda"
        and features.dtype in SUPPORTED_DTYPES
        and enabled_by_env()
        and triton_available(features.device)
        and dtype_supported(features.device, features.dtype)
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "ENV_VAR",
    "SUPPORTED_DTYPES",
    "TritonSparseConvolution",
    "dtype_supported",
    "enabled_by_env",
    "interpreting",
    "triton_available",
    "triton_conv",
    "triton_conv_backward",
    "triton_conv_forward",
    "triton_import_error",
    "use_triton",
]
