"""Backend discovery and selection: ``native`` (this package) or ``minkowski`` (MinkowskiEngine 0.5.4).

Both expose the same MinkowskiEngine 0.5 API. The choice comes from an explicit argument, else the
``STSEG_SPARSE_BACKEND`` environment variable, else ``native``.
"""

from __future__ import annotations

import collections
import collections.abc
import importlib
import os
from dataclasses import dataclass
from types import ModuleType

from stseg_models.sparse.errors import SparseBackendError, SparseInputError

ENV_VAR = "STSEG_SPARSE_BACKEND"
BACKEND_NAMES = ("native", "minkowski")


@dataclass(frozen=True)
class BackendInfo:
    """Availability of one backend; `reason` explains why it is unavailable (empty when usable)."""

    name: str
    available: bool
    reason: str = ""
    version: str = ""


def install_collections_shim() -> None:
    """MinkowskiEngine 0.5.4 uses ``collections.Sequence`` (removed in Python 3.10): alias it."""
    for name in ("Sequence", "Iterable", "Mapping", "MutableMapping"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def import_minkowski() -> ModuleType:
    """Import MinkowskiEngine after the shim; raises SparseBackendError with the reason on failure."""
    install_collections_shim()
    try:
        return importlib.import_module("MinkowskiEngine")
    except ImportError as exc:
        raise SparseBackendError(
            f"MinkowskiEngine is not importable ({exc}); build it with `stseg-models install-minkowski`"
        ) from exc
    except Exception as exc:  # a broken build can fail with OSError/RuntimeError at import
        raise SparseBackendError(
            f"MinkowskiEngine failed to import: {type(exc).__name__}: {exc}"
        ) from exc


def backends() -> dict[str, BackendInfo]:
    """Every backend with its availability and, when unavailable, why."""
    import torch

    result = {"native": BackendInfo("native", True, version=f"torch {torch.__version__}")}
    try:
        me = import_minkowski()
    except SparseBackendError as exc:
        result["minkowski"] = BackendInfo("minkowski", False, str(exc))
    else:
        result["minkowski"] = BackendInfo(
            "minkowski", True, version=str(getattr(me, "__version__", "?"))
        )
    return result


def backend_name(name: str | None = None) -> str:
    """Resolve the backend name: argument, else $STSEG_SPARSE_BACKEND, else 'native'."""
    chosen = (name or os.environ.get(ENV_VAR) or "native").strip().lower()
    if chosen in ("me", "minkowskiengine"):
        chosen = "minkowski"
    if chosen not in BACKEND_NAMES:
        raise SparseInputError(
            f"unknown sparse backend {chosen!r} (choose from {', '.join(BACKEND_NAMES)}; env {ENV_VAR})"
        )
    return chosen


def get_backend(name: str | None = None) -> ModuleType:
    """The module implementing the MinkowskiEngine API for the chosen backend (``import ... as ME``)."""
    if backend_name(name) == "minkowski":
        return import_minkowski()
    return importlib.import_module("stseg_models.sparse")
