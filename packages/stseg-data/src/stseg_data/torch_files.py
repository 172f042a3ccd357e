"""Loading PyTorch files without ever running code in them, with errors that say what was wrong.

`torch.load(weights_only=True)` refuses a pickle that asks for a callable it does not know, but
its message advises `weights_only=False` (which would run that code), and the same exception types
cover a truncated file, a foreign pickle and a gadget. `load_weights_only` keeps torch's refusal
and replaces its message: after a failed load it reads the pickle's opcodes (`pickletools`: a
reader, it executes nothing) and tells three cases apart:

- unsafe: the pickle names a global outside the tensor rebuilders (e.g. `posix.system`), so a full
  load would call it: `UnsafeFileError` "PATH: refused: not a safe checkpoint (...)";
- truncated or corrupt: the pickle stream stops early, or torch's archive reader fails;
- not a PyTorch file at all (neither a zip archive nor a protocol 2+ pickle).

The last two become the caller's read error (its own type, its own wording for "what").
torch is imported only when a file is loaded.
"""

from __future__ import annotations

import io
import os
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stseg_data.errors import PointCloudReadError, StsegInputError, UnsafeFileError

# Module prefixes of the globals a weights-only PyTorch file names: tensor and storage
# rebuilders, dtypes and devices, OrderedDict, numpy scalars. Anything else is reported by name.
_DATA_MODULES = ("torch", "numpy", "collections", "_codecs")
_PLAIN_BUILTINS = {"set", "frozenset", "bytearray", "bytes", "complex", "slice", "range", "int",
                   "float", "str", "tuple", "list", "dict", "bool"}  # fmt: skip
# torch's own words for "this pickle wanted a callable I do not allow"
_UNSAFE_MARKERS = ("unsupported global", "trying to call reduce", "unsupported class", "is blocked")
# the longest run of pickles a legacy (pre-1.6) torch file starts with: magic number, protocol,
# system info, the object, the storage keys; raw storage bytes follow
_LEGACY_PICKLES = 5
# torch's words for tensor bytes or an archive cut short
_CUT_SHORT = re.compile(r"EOF|central directory|miniz|corrupt|truncat|ran out of input", re.I)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class PickleScan:
    """What the opcodes of a file's pickle(s) show: a foreign global, or where the stream broke."""

    foreign_global: str | None = None
    broken: str | None = None
    is_pickle: bool = True


def load_weights_only(
    path: str | os.PathLike[str],
    *,
    what: str = "checkpoint",
    safe_globals: Iterable[Any] = (),
    read_error: type[StsegInputError] = PointCloudReadError,
    unsafe_error: type[UnsafeFileError] = UnsafeFileError,
    accepted: str = "only weights-only PyTorch files and .safetensors files are accepted",
    data: bytes | None = None,
) -> Any:
    """`torch.load(path, map_location="cpu", weights_only=True)` with typed, honest errors.

    `what` names the file in messages ("checkpoint", ".pt data file"); `safe_globals` are extra
    globals to allow (torch.serialization.safe_globals); `accepted` says what would be accepted.
    `data` are the file's bytes when the caller has already read them (they are loaded instead).
    """
    import torch

    target = Path(path)
    source: Any = io.BytesIO(data) if data is not None else target
    try:
        # torch warns about pickle protocols it did not write; the verdict below says it all
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with torch.serialization.safe_globals(list(safe_globals)):
                return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for unsafe, foreign or broken files
        raw = data if data is not None else _read_bytes(target)
        raise describe_load_failure(
            target, error, raw, what=what, read_error=read_error,
            unsafe_error=unsafe_error, accepted=accepted,
        ) from None  # fmt: skip


def describe_load_failure(
    path: Path,
    error: BaseException,
    data: bytes | None,
    *,
    what: str = "checkpoint",
    read_error: type[StsegInputError] = PointCloudReadError,
    unsafe_error: type[UnsafeFileError] = UnsafeFileError,
    accepted: str = "only weights-only PyTorch files and .safetensors files are accepted",
) -> StsegInputError:
    """The error to raise for a failed weights-only load of `path` (bytes `data`, if readable)."""
    reason = torch_reason(error)
    scan = scan_pickles(data) if data is not None else PickleScan(broken="file could not be read")
    if scan.foreign_global is not None:
        return unsafe_error(
            f"{path}: refused: not a safe {what} (its pickle calls {scan.foreign_global} when "
            f"loaded, which can run any code; {accepted})"
        )
    torch_refused = any(marker in str(error).lower() for marker in _UNSAFE_MARKERS)
    if not scan.is_pickle:
        return read_error(f"{path}: not a PyTorch file ({scan.broken})")
    if scan.broken is not None:
        # torch's complaint about a cut stream can read like a refusal (a global name cut short)
        cause = scan.broken if torch_refused else f"{scan.broken}; {reason}"
        return read_error(f"{path}: corrupt or truncated {what} ({cause})")
    if torch_refused:
        return unsafe_error(f"{path}: refused: not a safe {what} ({reason}; {accepted})")
    if isinstance(error, EOFError) or _CUT_SHORT.search(str(error)):
        # the pickles are whole but the tensor bytes after them (or the archive) are not
        return read_error(f"{path}: corrupt or truncated {what} ({reason})")
    return read_error(f"{path}: not a readable {what} ({reason})")


def torch_reason(error: BaseException) -> str:
    """torch's own cause of a failed load, without its advice (never `weights_only=False`)."""
    text = _ANSI.sub("", str(error))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    inner = [line for line in lines if "WeightsUnpickler error:" in line]
    if inner:
        candidate = inner[0].split("WeightsUnpickler error:", 1)[1]
    else:
        useful = [
            line
            for line in lines
            if "weights_only" not in line and not line.startswith("Check the documentation")
        ]
        candidate = useful[0] if useful else type(error).__name__
    # first sentence only: the rest is torch's advice (add_safe_globals, "likely corrupted", ...)
    sentence = re.split(r"(?<=[a-z0-9)])\. ", candidate.strip(), maxsplit=1)[0].rstrip(".")
    if not sentence or sentence.isdigit():
        sentence = f"{type(error).__name__}: {sentence}" if sentence else type(error).__name__
    return sentence if len(sentence) <= 160 else sentence[:157] + "..."


def scan_pickles(data: bytes) -> PickleScan:
    """Read the opcodes of a torch file's pickle(s) (zip archive or legacy stream), running none."""
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                if not names:
                    return PickleScan(broken="zip archive without data.pkl")
                return _scan_stream(io.BytesIO(archive.read(names[0])), 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            return PickleScan(broken=f"damaged zip archive: {error}")
    scan = _scan_stream(io.BytesIO(data), _LEGACY_PICKLES)
    # every file torch writes is a zip archive or starts with a protocol 2 pickle (PROTO, 0x80);
    # other bytes are a foreign pickle at best, named above if it calls something
    if scan.foreign_global is None and not data.startswith(b"\x80"):
        return PickleScan(broken="neither a zip archive nor a PyTorch pickle", is_pickle=False)
    return scan


def _scan_stream(stream: io.BytesIO, max_pickles: int) -> PickleScan:
    size = len(stream.getbuffer())
    walk = _OpcodeWalk()
    for _ in range(max_pickles):
        if stream.tell() >= size:
            break
        try:
            walk.run(pickletools.genops(stream))
        except _Foreign as foreign:
            return PickleScan(foreign_global=str(foreign))
        except Exception as error:  # genops raises ValueError and others on a cut stream
            return PickleScan(broken=f"pickle stream ends early or is damaged: {error}")
    return PickleScan()


class _Foreign(Exception):
    """Raised inside the opcode walk to stop at the first foreign global."""


class _OpcodeWalk:
    """Follows the opcodes far enough to name every global a pickle would look up."""

    def __init__(self) -> None:
        # STACK_GLOBAL (protocol 4+) takes module and name from the top of the stack: track what
        # the last pushes were (strings, or memo entries fetched back), None for anything else
        self.top: list[Any] = []
        self.memo: dict[int, Any] = {}

    def run(self, ops: Iterable[tuple[Any, Any, Any]]) -> None:
        for opcode, arg, _pos in ops:
            name = opcode.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                _check_global(module, attr)
            elif name == "STACK_GLOBAL":
                pushed = self.top[-2:] if len(self.top) >= 2 else [None, None]
                _check_global(str(pushed[0]), str(pushed[1]))
            elif name == "MEMOIZE":
                self.memo[len(self.memo)] = self.top[-1] if self.top else None
                continue
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                self.memo[int(arg)] = self.top[-1] if self.top else None
                continue
            elif name in ("PROTO", "FRAME", "STOP"):
                continue
            if name in ("GET", "BINGET", "LONG_BINGET"):
                self.top.append(self.memo.get(int(arg)))
            elif isinstance(arg, str) and ("UNICODE" in name or "STRING" in name):
                self.top.append(arg)
            else:
                self.top.append(None)
            del self.top[:-2]


def _check_global(module: str, attr: str) -> None:
    root = module.split(".")[0]
    if root in _DATA_MODULES or (module == "builtins" and attr in _PLAIN_BUILTINS):
        return
    raise _Foreign(f"{module}.{attr}" if module != "None" else "a global built on the stack")


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
