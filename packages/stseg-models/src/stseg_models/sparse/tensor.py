"""`SparseTensor`: features [N, C] on integer coordinates [N, 1+D] (batch index first)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from stseg_models.sparse.coordinate_manager import CoordinateManager, CoordinateMapKey
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import unique_rows
from stseg_models.sparse.kernel import to_int_tuple
from stseg_models.sparse.modes import SparseTensorQuantizationMode
from stseg_models.sparse.operation_mode import manager_for_new_tensor
from stseg_models.sparse.validation import (
    check_coordinates,
    check_features,
    floor_float_coordinates,
    same_manager,
)


def merge_duplicates(
    features: torch.Tensor,
    unique_index: torch.Tensor,
    inverse: torch.Tensor,
    mode: SparseTensorQuantizationMode,
) -> torch.Tensor:
    """Features [M, C] of the unique rows from features [N, C] of possibly duplicated rows."""
    m = unique_index.shape[0]
    if m == features.shape[0]:
        return features  # no duplicates: unique_index is the identity
    if mode == SparseTensorQuantizationMode.RANDOM_SUBSAMPLE:
        return features[unique_index]
    if mode == SparseTensorQuantizationMode.NO_QUANTIZATION:
        raise SparseInputError("duplicate coordinates with quantization_mode=NO_QUANTIZATION")
    if mode == SparseTensorQuantizationMode.MAX_POOL:
        out = features.new_full((m, features.shape[1]), float("-inf"))
        idx = inverse.unsqueeze(1).expand_as(features)
        return out.scatter_reduce(0, idx, features, reduce="amax")
    summed = features.new_zeros((m, features.shape[1])).index_add(0, inverse, features)
    if mode == SparseTensorQuantizationMode.UNWEIGHTED_SUM:
        return summed
    counts = torch.bincount(inverse, minlength=m).to(features.dtype).unsqueeze(1)
    return summed / counts


class SparseTensor:
    """MinkowskiEngine 0.5 compatible sparse tensor.

    Either ``SparseTensor(features [N, C], coordinates int [N, 1+D], tensor_stride=1,
    coordinate_manager=None, quantization_mode=RANDOM_SUBSAMPLE)`` (duplicates merged, see
    `SparseTensorQuantizationMode`; rows keep the order of first occurrence), or the internal form
    ``SparseTensor(features, coordinate_map_key=key, coordinate_manager=manager)`` for layer outputs.
    Floating-point coordinates are floored to int32 with MinkowskiEngine's warning, as it does
    (non-finite or out-of-int32 ones raise; `validation.floor_float_coordinates`).
    """

    def __init__(
        self,
        features: torch.Tensor,
        coordinates: torch.Tensor | None = None,
        tensor_stride: int | Sequence[int] = 1,
        coordinate_map_key: CoordinateMapKey | None = None,
        coordinate_manager: CoordinateManager | None = None,
        quantization_mode: SparseTensorQuantizationMode = SparseTensorQuantizationMode.RANDOM_SUBSAMPLE,
        allocator_type: Any = None,
        minkowski_algorithm: Any = None,
        requires_grad: bool | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        feats = check_features(features)
        if device is not None:
            feats = feats.to(device)
        self.quantization_mode = SparseTensorQuantizationMode(quantization_mode)
        self.unique_index: torch.Tensor | None = None
        self.inverse_mapping: torch.Tensor | None = None
        if coordinates is not None and coordinate_map_key is not None:
            raise SparseInputError(
                "SparseTensor takes coordinates or a coordinate_map_key (with its manager), not both"
            )
        if coordinates is None:
            if coordinate_map_key is None or coordinate_manager is None:
                raise SparseInputError(
                    "SparseTensor needs coordinates, or a coordinate_map_key with its coordinate_manager"
                )
            n = coordinate_manager.size(coordinate_map_key)
            if feats.shape[0] != n:
                raise SparseInputError(
                    f"features have {feats.shape[0]} rows but coordinate set {coordinate_map_key} has {n}"
                )
            self._manager, self._key = coordinate_manager, coordinate_map_key
        else:
            dim = None if coordinate_manager is None else coordinate_manager.D
            # float coordinates: floored with a warning, as MinkowskiEngine does
            coordinates = floor_float_coordinates(coordinates)
            coords = check_coordinates(coordinates, dim, feats.shape[0])
            if coords.device != feats.device:
                coords = coords.to(feats.device)
            dimension = coords.shape[1] - 1
            stride = to_int_tuple(tensor_stride, dimension, "tensor_stride")
            if any(s < 1 for s in stride):
                raise SparseInputError(f"tensor_stride must be >= 1, got {stride}")
            manager = coordinate_manager or manager_for_new_tensor(dimension)
            unique_index, inverse = unique_rows(coords)
            feats = merge_duplicates(feats, unique_index, inverse, self.quantization_mode)
            # all rows unique: unique_index is 0..N-1, a copy is what indexing would give
            rows = coords.clone() if len(unique_index) == len(coords) else coords[unique_index]
            self._key = manager.insert_unique(rows, stride)
            self._manager = manager
            self.unique_index, self.inverse_mapping = unique_index, inverse
        if requires_grad is not None:
            feats.requires_grad_(requires_grad)
        self._F = feats

    # -- MinkowskiEngine properties ---------------------------------------------------------------
    @property
    def F(self) -> torch.Tensor:
        return self._F

    features = F

    @property
    def C(self) -> torch.Tensor:
        """int32 [N, 1+D] coordinates (batch index first)."""
        return self._manager.get_coordinates(self._key)

    coordinates = C

    @property
    def coordinate_map_key(self) -> CoordinateMapKey:
        return self._key

    coordinate_key = coordinate_map_key

    @property
    def coordinate_manager(self) -> CoordinateManager:
        return self._manager

    def get_device(self) -> int:
        return self._F.get_device()

    @property
    def tensor_stride(self) -> list[int]:
        return list(self._key.tensor_stride)

    @property
    def D(self) -> int:
        return self._manager.D

    dimension = D

    @property
    def shape(self) -> torch.Size:
        return self._F.shape

    @property
    def device(self) -> torch.device:
        return self._F.device

    @property
    def dtype(self) -> torch.dtype:
        return self._F.dtype

    @property
    def requires_grad(self) -> bool:
        return self._F.requires_grad

    def __len__(self) -> int:
        return self._F.shape[0]

    def size(self) -> torch.Size:
        return self._F.size()

    def __repr__(self) -> str:
        return f"SparseTensor(rows={len(self)}, channels={self._F.shape[1]}, tensor_stride={self.tensor_stride}, D={self.D})"

    # -- conversions ----------------------------------------------------------------------------------
    def _with(self, features: torch.Tensor) -> SparseTensor:
        return SparseTensor(
            features, coordinate_map_key=self._key, coordinate_manager=self._manager
        )

    def requires_grad_(self, flag: bool = True) -> SparseTensor:
        self._F.requires_grad_(flag)
        return self

    def detach(self) -> SparseTensor:
        return self._with(self._F.detach())

    def float(self) -> SparseTensor:
        return self._with(self._F.float())

    def double(self) -> SparseTensor:
        return self._with(self._F.double())

    def to(self, *args: Any, **kwargs: Any) -> SparseTensor:
        """Cast or move the features; moving device moves the coordinates into a new manager."""
        feats = self._F.to(*args, **kwargs)
        if feats.device == self._F.device:
            return self._with(feats)
        return SparseTensor(feats, self.C.to(feats.device), tensor_stride=self.tensor_stride)

    def cpu(self) -> SparseTensor:
        return self.to("cpu")

    def cuda(self, device: Any = None) -> SparseTensor:
        return self.to(torch.device("cuda") if device is None else device)

    # -- per-batch views ------------------------------------------------------------------------------
    def _batch_rows(self) -> list[torch.Tensor]:
        """Per batch index (ascending), its rows in ascending order (`CoordinateManager.origin_map`)."""
        return self._manager.origin_map(self._key)[1]

    @property
    def decomposition_permutations(self) -> list[torch.Tensor]:
        return self._batch_rows()

    @property
    def decomposed_coordinates(self) -> list[torch.Tensor]:
        return [self.C[rows, 1:] for rows in self._batch_rows()]

    @property
    def decomposed_features(self) -> list[torch.Tensor]:
        return [self._F[rows] for rows in self._batch_rows()]

    @property
    def decomposed_coordinates_and_features(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        rows = self._batch_rows()
        return [self.C[r, 1:] for r in rows], [self._F[r] for r in rows]

    def coordinates_at(self, batch_index: int) -> torch.Tensor:
        """Spatial coordinates [N_b, D] of the rows with batch index `batch_index`."""
        return self.C[self.C[:, 0] == batch_index, 1:]

    def features_at(self, batch_index: int) -> torch.Tensor:
        """Features [N_b, C] of the rows with batch index `batch_index`."""
        return self._F[self.C[:, 0] == batch_index]

    def coordinates_and_features_at(self, batch_index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.C[:, 0] == batch_index
        return self.C[rows, 1:], self._F[rows]

    # -- queries ------------------------------------------------------------------------------------
    def features_at_coordinates(self, query_coordinates: torch.Tensor) -> torch.Tensor:
        """Features [M, C] at continuous points [M, 1+D]: n-linear interpolation (`interpolation`).

        As MinkowskiEngine 0.5.4 (which routes this through MinkowskiInterpolationFunction): on a
        voxel it returns that voxel's features, between voxels the n-linear blend of the present
        corners, zeros far from every voxel. Differentiable in the features.
        """
        from stseg_models.sparse.interpolation import MinkowskiInterpolationFunction

        q = torch.as_tensor(query_coordinates, device=self.device)
        if q.dim() != 2 or q.shape[1] != self.D + 1:
            raise SparseInputError(
                f"query coordinates must be [M, {self.D + 1}], got {tuple(q.shape)}"
            )
        dtype = self.dtype if self.dtype.is_floating_point else torch.float64
        out = MinkowskiInterpolationFunction.apply(self._F, q.to(dtype), self._key, self._manager)
        return out[0]

    def dense(
        self,
        shape: torch.Size | None = None,
        min_coordinate: torch.Tensor | int | None = None,
        contract_stride: bool = True,
    ) -> tuple[torch.Tensor, Any, torch.Tensor]:
        """Dense [B, C, *spatial] tensor, the min coordinate and the tensor stride (see `conversions`)."""
        from stseg_models.sparse.conversions import to_dense

        return to_dense(self, shape, min_coordinate, contract_stride)

    def sparse(
        self,
        min_coords: torch.Tensor | None = None,
        max_coords: torch.Tensor | None = None,
        contract_coords: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Torch sparse COO tensor [B, *spatial, C], its min coordinate, the tensor stride."""
        from stseg_models.sparse.conversions import to_torch_sparse

        return to_torch_sparse(self, min_coords, max_coords, contract_coords)

    def slice(self, X: Any) -> Any:
        """A TensorField: the features of the voxel each point of `X` fell into, in `X`'s order.

        `X` is the TensorField this tensor's input came from, or the SparseTensor created (with
        duplicates) from the original points (then its ``inverse_mapping`` is used).
        """
        from stseg_models.sparse.field import TensorField, slice_to_field

        if isinstance(X, SparseTensor):
            if X.coordinate_map_key != self._key or X.inverse_mapping is None:
                raise SparseInputError(
                    "slice(SparseTensor) needs the tensor created from the original coordinates, "
                    "on this tensor's coordinate set"
                )
            inv = X.inverse_mapping
            return TensorField(
                self._F[inv], self.C[inv], coordinate_manager=self._manager,
                quantization_mode=self.quantization_mode,
            )  # fmt: skip
        return slice_to_field(self, X)

    def cat_slice(self, X: Any) -> Any:
        """`slice` with the original features of `X` appended: a TensorField [N, C + C_X]."""
        sliced = self.slice(X)
        return sliced._with(torch.cat([sliced.F, X.F], dim=1))

    def interpolate(self, X: Any) -> Any:
        """A TensorField: features at `X`'s points, through its splat map if `X` was splatted here."""
        from stseg_models.sparse.field import TensorField, interpolate_field

        if not isinstance(X, TensorField):
            raise SparseInputError(f"interpolate() expects a TensorField, got {type(X).__name__}")
        return interpolate_field(self, X)

    # -- arithmetic -------------------------------------------------------------------------------
    def _binary(
        self, other: Any, op: Callable[[Any, Any], torch.Tensor], name: str
    ) -> SparseTensor:
        if isinstance(other, SparseTensor):
            same_manager([self, other], f"SparseTensor {name}")
            if other._key == self._key:
                return self._with(op(self._F, other._F))
            return _union_binary(self, other, op)
        return self._with(op(self._F, other))

    def __add__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.add, "+")

    def __sub__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.sub, "-")

    def __mul__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.mul, "*")

    def __truediv__(self, other: Any) -> SparseTensor:
        return self._binary(other, torch.div, "/")

    def __radd__(self, other: Any) -> SparseTensor:
        return self._with(other + self._F)

    def __rmul__(self, other: Any) -> SparseTensor:
        return self._with(other * self._F)

    def __rsub__(self, other: Any) -> SparseTensor:
        return self._with(other - self._F)

    def __neg__(self) -> SparseTensor:
        return self._with(-self._F)


def _union_binary(
    a: SparseTensor, b: SparseTensor, op: Callable[[Any, Any], torch.Tensor]
) -> SparseTensor:
    """Elementwise op over the union of two coordinate sets (absent rows count as zeros)."""
    if a.tensor_stride != b.tensor_stride:
        raise SparseInputError(
            f"cannot combine tensor strides {a.tensor_stride} and {b.tensor_stride}"
        )
    both = torch.cat([a.C, b.C])
    unique_index, inverse = unique_rows(both)
    manager = a.coordinate_manager
    key = manager.insert_unique(both[unique_index], a.tensor_stride, "union")
    m = unique_index.shape[0]
    fa = a.F.new_zeros((m, a.F.shape[1])).index_copy(0, inverse[: len(a)], a.F)
    fb = b.F.new_zeros((m, b.F.shape[1])).index_copy(0, inverse[len(a) :], b.F)
    return SparseTensor(op(fa, fb), coordinate_map_key=key, coordinate_manager=manager)
