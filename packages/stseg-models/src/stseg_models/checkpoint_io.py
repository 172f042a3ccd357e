"""Reading and writing checkpoint files safely.

Every PyTorch file goes through `torch.load(weights_only=True)` (via
`stseg_data.torch_files.load_weights_only`), with no fallback: a file that needs pickle code
execution is refused (`UnsafeCheckpointError`, "refused: not a safe checkpoint", naming the pickled
global), never executed, and the message never suggests `weights_only=False`. The only globals
allowed beyond PyTorch's own are numpy's scalar and dtype reconstructors (original model-zoo files
store their best score as a numpy float); they rebuild a number from bytes and run no code.
`.safetensors` files are read with the safetensors library (no pickle at all).

Truncated, empty or foreign files become `CheckpointReadError` naming the path and the cause
("corrupt or truncated" only where the pickle stream or the archive is cut or damaged).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stseg_data.atomic import atomic_write
from stseg_data.torch_files import load_weights_only
from stseg_models.errors import CheckpointReadError, UnsafeCheckpointError

SAFETENSORS_SUFFIXES = (".safetensors",)
#: safetensors metadata key holding our JSON metadata
SAFETENSORS_META_KEY = "stseg"


def _numpy_safe_globals() -> list[Any]:
    """numpy scalar/dtype reconstructors, under both the numpy 1 and numpy 2 module names."""
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed: list[Any] = [
        (scalar, "numpy.core.multiarray.scalar"),
        (scalar, "numpy._core.multiarray.scalar"),
        np.dtype,
    ]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def _short(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _check_file(path: Path) -> None:
    if not path.exists():
        raise CheckpointReadError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise CheckpointReadError(f"{path}: is not a file")
    if path.stat().st_size == 0:
        raise CheckpointReadError(f"{path}: empty file (0 bytes), not a checkpoint")


def read_torch_file(path: str | os.PathLike[str]) -> Any:
    """`torch.load(path, weights_only=True, map_location="cpu")` with typed errors."""
    p = Path(path)
    _check_file(p)
    if zipfile.is_zipfile(p):
        try:
            with zipfile.ZipFile(p) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise CheckpointReadError(f"{p}: corrupt checkpoint archive ({error})") from error
        if bad is not None:
            raise CheckpointReadError(f"{p}: corrupt checkpoint: CRC mismatch in member {bad!r}")
    return load_weights_only(
        p,
        what="checkpoint",
        safe_globals=_numpy_safe_globals(),
        read_error=CheckpointReadError,
        unsafe_error=UnsafeCheckpointError,
        accepted="only weights-only checkpoints or .safetensors files are accepted",
    )


def read_safetensors_file(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, our JSON metadata or {}) from a .safetensors file."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    p = Path(path)
    _check_file(p)
    data = p.read_bytes()
    try:
        tensors = load_bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, OSError) as error:
        raise CheckpointReadError(
            f"{p}: not a valid .safetensors file ({_short(str(error))})"
        ) from error
    raw = header.get("__metadata__", {}).get(SAFETENSORS_META_KEY)
    try:
        meta = json.loads(raw) if raw else {}
    except json.JSONDecodeError as error:
        raise CheckpointReadError(f"{p}: corrupt stseg metadata in .safetensors header") from error
    return tensors, meta


def read_checkpoint_file(path: str | os.PathLike[str]) -> Any:
    """The raw payload: a dict (or state dict) from a PyTorch file, or for .safetensors
    ``{"state_dict": tensors, **metadata}``."""
    if str(path).endswith(SAFETENSORS_SUFFIXES):
        tensors, meta = read_safetensors_file(path)
        return {**meta, "state_dict": tensors}
    return read_torch_file(path)


def write_torch_file(
    path: str | os.PathLike[str], payload: dict, *, overwrite: bool = True
) -> None:
    """Atomically `torch.save` a payload of tensors and plain Python values."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_write(path, "wb", overwrite=overwrite) as handle:
        handle.write(buffer.getbuffer())


def write_safetensors_file(
    path: str | os.PathLike[str],
    state_dict: dict[str, torch.Tensor],
    meta: dict | None = None,
    *,
    overwrite: bool = True,
) -> None:
    """Atomically write tensors (contiguous CPU copies) and JSON metadata as .safetensors."""
    from safetensors.torch import save as save_bytes

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    metadata = {SAFETENSORS_META_KEY: json.dumps(meta)} if meta else None
    data = save_bytes(tensors, metadata=metadata)
    with atomic_write(path, "wb", overwrite=overwrite) as handle:
        handle.write(data)
