"""`TensorField`: features on continuous points, quantised with `.sparse()` and recovered with `slice`."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch

from stseg_models.sparse.coordinate_manager import CoordinateManager, CoordinateMapKey
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import floor_to_stride, lookup, unique_rows
from stseg_models.sparse.kernel import to_int_tuple
from stseg_models.sparse.modes import SparseTensorQuantizationMode
from stseg_models.sparse.tensor import SparseTensor, merge_duplicates
from stseg_models.sparse.validation import check_features, check_float_coordinates, same_manager

_field_ids = itertools.count()


class TensorField:
    """Features [N, C] on continuous coordinates [N, 1+D] (batch index first, in voxel units).

    ``sparse()`` floors the coordinates to the tensor stride and merges points sharing a voxel
    (UNWEIGHTED_AVERAGE by default, as MinkowskiEngine); ``sparse_tensor.slice(field)`` gives every
    original point the features of its voxel, in the original point order.
    """

    def __init__(
        self,
        features: torch.Tensor,
        coordinates: torch.Tensor,
        tensor_stride: int | Sequence[int] = 1,
        coordinate_field_map_key: Any = None,
        coordinate_manager: CoordinateManager | None = None,
        quantization_mode: SparseTensorQuantizationMode = SparseTensorQuantizationMode.UNWEIGHTED_AVERAGE,
        allocator_type: Any = None,
        minkowski_algorithm: Any = None,
        requires_grad: bool | None = None,
        device: torch.device | str | None = None,
        _field_id: int | None = None,
    ) -> None:
        feats = check_features(features)
        if device is not None:
            feats = feats.to(device)
        dim = None if coordinate_manager is None else coordinate_manager.D
        coords = check_float_coordinates(coordinates, dim, feats.shape[0]).to(feats.device)
        self._C = coords
        self._manager = coordinate_manager or CoordinateManager(D=coords.shape[1] - 1)
        self._stride = to_int_tuple(tensor_stride, self._manager.D, "tensor_stride")
        self.quantization_mode = SparseTensorQuantizationMode(quantization_mode)
        self._id = next(_field_ids) if _field_id is None else _field_id
        if requires_grad is not None:
            feats.requires_grad_(requires_grad)
        self._F = feats

    @property
    def F(self) -> torch.Tensor:
        return self._F

    features = F

    @property
    def C(self) -> torch.Tensor:
        return self._C

    coordinates = C

    @property
    def D(self) -> int:
        return self._manager.D

    dimension = D

    @property
    def tensor_stride(self) -> list[int]:
        return list(self._stride)

    @property
    def coordinate_manager(self) -> CoordinateManager:
        return self._manager

    @property
    def shape(self) -> torch.Size:
        return self._F.shape

    @property
    def device(self) -> torch.device:
        return self._F.device

    @property
    def dtype(self) -> torch.dtype:
        return self._F.dtype

    def __len__(self) -> int:
        return self._F.shape[0]

    def __repr__(self) -> str:
        return f"TensorField(rows={len(self)}, channels={self._F.shape[1]}, D={self.D})"

    def _with(self, features: torch.Tensor) -> TensorField:
        return TensorField(
            features, self._C, self._stride, coordinate_manager=self._manager,
            quantization_mode=self.quantization_mode, _field_id=self._id,
        )  # fmt: skip

    def detach(self) -> TensorField:
        return self._with(self._F.detach())

    def inverse_mapping(self, key: CoordinateMapKey) -> torch.Tensor:
        """Row of the sparse tensor (at `key`) each point was merged into, [N]."""
        inverse = self._manager._field_maps.get((self._id, key))
        if inverse is None:
            raise SparseInputError(f"this field was never quantised to coordinate key {key}")
        return inverse

    def sparse(
        self,
        tensor_stride: int | Sequence[int] | None = None,
        coordinate_map_key: Any = None,
        quantization_mode: SparseTensorQuantizationMode | None = None,
    ) -> SparseTensor:
        """Quantise to a SparseTensor: coordinates floored to the stride, duplicates merged."""
        stride = (
            self._stride
            if tensor_stride is None
            else to_int_tuple(tensor_stride, self.D, "tensor_stride")
        )
        mode = (
            self.quantization_mode
            if quantization_mode is None
            else SparseTensorQuantizationMode(quantization_mode)
        )
        if mode == SparseTensorQuantizationMode.NO_QUANTIZATION:
            mode = SparseTensorQuantizationMode.UNWEIGHTED_AVERAGE
        coords = (
            torch.floor(self._C.double()).long() if self._C.is_floating_point() else self._C.long()
        )
        coords = floor_to_stride(coords, torch.tensor(stride, device=coords.device))
        unique_index, inverse = unique_rows(coords)
        feats = merge_duplicates(self._F, unique_index, inverse, mode)
        key = self._manager.insert_unique(coords[unique_index], stride)
        self._manager._field_maps[(self._id, key)] = inverse
        out = SparseTensor(feats, coordinate_map_key=key, coordinate_manager=self._manager)
        out.unique_index, out.inverse_mapping = unique_index, inverse
        return out


def slice_to_field(sparse: SparseTensor, field: TensorField) -> TensorField:
    """Features of `sparse` at each point of `field` (zeros for points outside every voxel)."""
    if not isinstance(field, TensorField):
        raise SparseInputError(f"slice() expects a TensorField, got {type(field).__name__}")
    same_manager([sparse, field], "slice")
    inverse = sparse.coordinate_manager._field_maps.get((field._id, sparse.coordinate_map_key))
    if inverse is None:  # a different set: find each point's voxel at this tensor stride
        coords = (
            torch.floor(field.C.double()).long() if field.C.is_floating_point() else field.C.long()
        )
        coords = floor_to_stride(coords, torch.tensor(sparse.tensor_stride, device=coords.device))
        inverse = lookup(coords, sparse.C.long())
    feats = sparse.F[inverse.clamp(min=0)] * (inverse >= 0).unsqueeze(1).to(sparse.F.dtype)
    return TensorField(
        feats,
        field.C,
        field.tensor_stride,
        coordinate_manager=field.coordinate_manager,
        _field_id=field._id,
    )
