"""MinkowskiEngine 0.5.4's build and device queries, answered for the native engine.

MinkowskiEngine reports how its C++/CUDA extension was compiled. The native engine has no extension:
it runs wherever PyTorch runs, so these functions describe the PyTorch it runs on.

* `is_cuda_available()` -- True when the native engine can run on a GPU now
  (``torch.cuda.is_available()``); MinkowskiEngine says whether it was *compiled* with CUDA.
* `cuda_version()` / `cudart_version()` -- the CUDA version PyTorch was built with, encoded as
  CUDA's ``CUDA_VERSION`` macro (``1000 * major + 10 * minor``: 12.4 -> 12040), -1 for a CPU build
  of PyTorch (MinkowskiEngine's CPU build answers -1 too).
* `get_gpu_memory_info(device=None)` -- ``(free, total)`` bytes of the current CUDA device,
  ``(0, 0)`` without CUDA.
* `parse_nvidia_smi()` -- ``{key: value}`` of ``nvidia-smi -q`` (empty without nvidia-smi;
  MinkowskiEngine raises FileNotFoundError there).
* `print_diagnostics()` -- system, PyTorch, NVIDIA driver, compiler and engine versions, for bug
  reports.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys

import torch


def is_cuda_available() -> bool:
    """True when a CUDA device is usable by the native engine (PyTorch with CUDA and a GPU)."""
    return bool(torch.cuda.is_available())


def _encoded_cuda_version() -> int:
    text = torch.version.cuda
    if not text:
        return -1
    parts = [int(p) for p in text.split(".")[:2] if p.isdigit()]
    major = parts[0] if parts else 0
    minor = parts[1] if len(parts) > 1 else 0
    return 1000 * major + 10 * minor


def cuda_version() -> int:
    """CUDA toolkit version PyTorch was compiled with (``CUDA_VERSION`` encoding), -1 without CUDA."""
    return _encoded_cuda_version()


def cudart_version() -> int:
    """CUDA runtime version PyTorch ships with (``CUDA_VERSION`` encoding), -1 without CUDA."""
    # PyTorch bundles the runtime of the toolkit it was built with, so both versions agree.
    return _encoded_cuda_version()


def get_gpu_memory_info(device: int | str | torch.device | None = None) -> tuple[int, int]:
    """``(free, total)`` bytes of GPU memory on `device` (current device by default); (0, 0) on CPU."""
    if not torch.cuda.is_available():
        return 0, 0
    free, total = torch.cuda.mem_get_info(device)
    return int(free), int(total)


def _run(command: list[str]) -> str:
    """Output of a diagnostic command, or a note that it is unavailable (never raises)."""
    if shutil.which(command[0]) is None:
        return f"{command[0]}: not found"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{command[0]}: {exc}"
    return (done.stdout or done.stderr).strip()


def parse_nvidia_smi() -> dict[str, str]:
    """Every ``key : value`` line of ``nvidia-smi -q`` as a dict; {} when nvidia-smi is absent."""
    if shutil.which("nvidia-smi") is None:
        return {}
    out: dict[str, str] = {}
    for line in _run(["nvidia-smi", "-q"]).splitlines():
        if line.count(":") == 1:
            key, value = (part.strip() for part in line.split(":"))
            out[key] = value
    return out


def diagnostics_text() -> str:
    """The report `print_diagnostics` prints, as one string (sections as MinkowskiEngine's)."""
    lines = ["==========System==========", platform.platform(), sys.version]
    lines += ["==========Pytorch==========", torch.__version__]
    lines.append(f"torch.cuda.is_available(): {torch.cuda.is_available()}")
    lines.append("==========NVIDIA-SMI==========")
    smi = parse_nvidia_smi()
    versions = [f"{k} {v}" for k, v in smi.items() if "version" in k.lower()]
    lines += versions or ["nvidia-smi: not found or no version lines"]
    lines += ["==========NVCC==========", _run(["nvcc", "--version"])]
    compiler = _run(["c++", "--version"]).splitlines()
    lines += ["==========CC==========", compiler[0] if compiler else "c++: no output"]
    from stseg_models.sparse import __version__

    lines += [
        "==========MinkowskiEngine==========",
        f"{__version__} (stseg native engine, pure PyTorch)",
        f"MinkowskiEngine compiled with CUDA Support: {is_cuda_available()}",
        f"NVCC version MinkowskiEngine is compiled: {cuda_version()}",
        f"CUDART version MinkowskiEngine is compiled: {cudart_version()}",
    ]
    return "\n".join(lines)


def print_diagnostics() -> None:
    """Print system, PyTorch, driver, compiler and engine versions (MinkowskiEngine's bug-report aid)."""
    print(diagnostics_text())
