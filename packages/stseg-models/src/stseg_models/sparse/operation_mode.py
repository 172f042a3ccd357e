"""Sparse tensor operation mode: separate coordinate managers (default) or one shared global manager.

MinkowskiEngine 0.5.4 semantics: with `SparseTensorOperationMode.SHARE_COORDINATE_MANAGER`, every
`SparseTensor` / `TensorField` created without an explicit ``coordinate_manager`` uses one global
`CoordinateManager` (created by the first such tensor), until `clear_global_coordinate_manager`
drops it. User code calls the clear after each forward/backward pass, exactly as with
MinkowskiEngine.

The mode and the global manager are the one piece of module state of the engine: MinkowskiEngine's
API defines them as process-wide settings (functions with no arguments return them), so they cannot
be threaded through arguments without changing that API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.modes import SparseTensorOperationMode

if TYPE_CHECKING:
    from stseg_models.sparse.coordinate_manager import CoordinateManager

# {"mode": SparseTensorOperationMode, "manager": CoordinateManager | None}
_STATE: dict[str, Any] = {
    "mode": SparseTensorOperationMode.SEPARATE_COORDINATE_MANAGER,
    "manager": None,
}


def set_sparse_tensor_operation_mode(operation_mode: SparseTensorOperationMode) -> None:
    """Choose whether new sparse tensors share the global coordinate manager."""
    if not isinstance(operation_mode, SparseTensorOperationMode):
        raise SparseInputError(
            f"operation mode must be a SparseTensorOperationMode, got {operation_mode!r}"
        )
    _STATE["mode"] = operation_mode


def sparse_tensor_operation_mode() -> SparseTensorOperationMode:
    """The current operation mode."""
    return SparseTensorOperationMode(_STATE["mode"])


def global_coordinate_manager() -> CoordinateManager | None:
    """The shared coordinate manager, or None if none was created since the last clear."""
    return _STATE["manager"]


def set_global_coordinate_manager(coordinate_manager: CoordinateManager | None) -> None:
    """Make `coordinate_manager` the shared one."""
    _STATE["manager"] = coordinate_manager


def clear_global_coordinate_manager() -> None:
    """Drop the shared coordinate manager (call after each forward/backward in SHARE mode)."""
    _STATE["manager"] = None


def manager_for_new_tensor(dimension: int) -> CoordinateManager:
    """The manager a tensor created without one uses: a new one, or the shared one in SHARE mode."""
    from stseg_models.sparse.coordinate_manager import CoordinateManager

    if _STATE["mode"] != SparseTensorOperationMode.SHARE_COORDINATE_MANAGER:
        return CoordinateManager(D=dimension)
    manager = _STATE["manager"]
    if manager is None:
        manager = CoordinateManager(D=dimension)
        _STATE["manager"] = manager
    elif dimension != manager.D:
        raise SparseInputError(
            f"the global coordinate manager is {manager.D}-dimensional but the new tensor is "
            f"{dimension}-dimensional; call clear_global_coordinate_manager() first"
        )
    return manager
