"""`TensorField`: features on continuous points, quantised with `.sparse()` and recovered with `slice`.

The points are registered in the coordinate manager as a field set (`insert_field`), so
``TensorField(features, coordinate_field_map_key=key, coordinate_manager=manager)`` rebuilds a
field on the same points, and the manager remembers which point went to which voxel of every
sparse tensor made from it (``inverse_mapping``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from stseg_models.sparse.coordinate_manager import CoordinateManager, CoordinateMapKey, as_stride
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import floor_to_stride, lookup, unique_rows
from stseg_models.sparse.kernel import to_int_tuple
from stseg_models.sparse.modes import SparseTensorQuantizationMode
from stseg_models.sparse.operation_mode import manager_for_new_tensor
from stseg_models.sparse.tensor import SparseTensor, merge_duplicates
from stseg_models.sparse.validation import check_features, check_float_coordinates, same_manager


def splat_coordinates(coordinates: torch.Tensor) -> torch.Tensor:
    """The 2^D voxel corners of each point's cell [N * 2^D, 1+D] (MinkowskiEngine's order).

    Per point: the floored coordinate, then the corner sets grown axis by axis from the last axis
    to the first (for 2D: +(0,0), +(0,1), +(1,0), +(1,1)).
    """
    dim = coordinates.shape[1] - 1
    offsets = [[0] * (dim + 1)]
    for d in reversed(range(1, dim + 1)):
        offsets += [[*o[:d], 1, *o[d + 1 :]] for o in offsets]
    table = torch.tensor(offsets, dtype=torch.int64, device=coordinates.device)
    base = (
        torch.floor(coordinates.double()).long()
        if coordinates.is_floating_point()
        else coordinates.long()
    )
    return (base[:, None, :] + table[None]).reshape(-1, dim + 1)


class TensorField:
    """Features [N, C] on continuous coordinates [N, 1+D] (batch index first, in voxel units).

    ``sparse()`` floors the coordinates to the tensor stride and merges points sharing a voxel
    (UNWEIGHTED_AVERAGE by default, as MinkowskiEngine); ``sparse_tensor.slice(field)`` gives every
    original point the features of its voxel, in the original point order.
    """

    def __init__(
        self,
        features: torch.Tensor,
        coordinates: torch.Tensor | None = None,
        tensor_stride: int | Sequence[int] = 1,
        coordinate_field_map_key: CoordinateMapKey | None = None,
        coordinate_manager: CoordinateManager | None = None,
        quantization_mode: SparseTensorQuantizationMode = SparseTensorQuantizationMode.UNWEIGHTED_AVERAGE,
        allocator_type: Any = None,
        minkowski_algorithm: Any = None,
        requires_grad: bool | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        feats = check_features(features)
        if device is not None:
            feats = feats.to(device)
        if coordinates is None:
            if coordinate_field_map_key is None or coordinate_manager is None:
                raise SparseInputError(
                    "TensorField needs coordinates, or a coordinate_field_map_key with its manager"
                )
            self._manager = coordinate_manager
            self._key = coordinate_field_map_key
            coords = coordinate_manager.get_coordinate_field(coordinate_field_map_key)
            if coords.shape[0] != feats.shape[0]:
                raise SparseInputError(
                    f"features have {feats.shape[0]} rows but field {coordinate_field_map_key} has {coords.shape[0]}"
                )
            self._stride = coordinate_field_map_key.tensor_stride
        else:
            if coordinate_field_map_key is not None:
                raise SparseInputError(
                    "TensorField takes coordinates or a coordinate_field_map_key, not both"
                )
            dim = None if coordinate_manager is None else coordinate_manager.D
            coords = check_float_coordinates(coordinates, dim, feats.shape[0]).to(feats.device)
            self._manager = coordinate_manager or manager_for_new_tensor(coords.shape[1] - 1)
            self._stride = to_int_tuple(tensor_stride, self._manager.D, "tensor_stride")
            self._key = self._manager.insert_field(coords, self._stride)
        self._C = coords
        self.quantization_mode = SparseTensorQuantizationMode(quantization_mode)
        # splat maps per sparse key: (tensor rows, point rows, weights, (rows, points))
        self._splat: dict[CoordinateMapKey, tuple] = {}
        if requires_grad is not None:
            feats.requires_grad_(requires_grad)
        self._F = feats

    @property
    def _id(self) -> CoordinateMapKey:
        """Identity of the point set (two fields on the same points share it)."""
        return self._key

    @property
    def coordinate_field_map_key(self) -> CoordinateMapKey:
        return self._key

    coordinate_key = coordinate_field_map_key

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
        out = TensorField(
            features, coordinate_field_map_key=self._key, coordinate_manager=self._manager,
            quantization_mode=self.quantization_mode,
        )  # fmt: skip
        out._splat = self._splat
        return out

    def detach(self) -> TensorField:
        return self._with(self._F.detach())

    def float(self) -> TensorField:
        return self._with(self._F.float())

    def double(self) -> TensorField:
        return self._with(self._F.double())

    # -- per-batch views (as SparseTensor's) ------------------------------------------------------
    @property
    def decomposition_permutations(self) -> list[torch.Tensor]:
        return self._manager.origin_field_map(self._key)[1]

    @property
    def decomposed_coordinates(self) -> list[torch.Tensor]:
        return [self._C[r, 1:] for r in self.decomposition_permutations]

    @property
    def decomposed_features(self) -> list[torch.Tensor]:
        return [self._F[r] for r in self.decomposition_permutations]

    # -- quantisation -------------------------------------------------------------------------------
    def inverse_mapping(self, sparse_tensor_map_key: CoordinateMapKey) -> torch.Tensor:
        """Row of the sparse tensor (at `key`) each point falls into, [N] int64 (-1: none)."""
        return self._manager.field_inverse(self._key, sparse_tensor_map_key)

    def sparse(
        self,
        tensor_stride: int | Sequence[int] = 1,
        coordinate_map_key: CoordinateMapKey | None = None,
        quantization_mode: SparseTensorQuantizationMode | None = None,
    ) -> SparseTensor:
        """Quantise to a SparseTensor: points floored to `tensor_stride`, each voxel's points merged.

        With `coordinate_map_key`, onto that existing set instead (points outside it are dropped).
        """
        mode = (
            self.quantization_mode
            if quantization_mode is None
            else SparseTensorQuantizationMode(quantization_mode)
        )
        if mode == SparseTensorQuantizationMode.NO_QUANTIZATION:
            mode = SparseTensorQuantizationMode.UNWEIGHTED_AVERAGE
        manager = self._manager
        if coordinate_map_key is None:
            stride = as_stride(tensor_stride, self.D)
            key, (unique_index, inverse) = manager.field_to_sparse_insert_and_map(self._key, stride)
            feats = merge_duplicates(self._F, unique_index, inverse, mode)
        else:
            unique_index, inverse = manager.get_field_to_sparse_map(self._key, coordinate_map_key)
            key, hit = coordinate_map_key, inverse >= 0
            n_rows = manager.size(key)
            points = torch.arange(len(self), device=self.device)[hit]
            if mode == SparseTensorQuantizationMode.RANDOM_SUBSAMPLE:
                feats = self._F.new_zeros((n_rows, self._F.shape[1]))
                feats = feats.index_copy(0, inverse[hit], self._F[points])
            else:
                sub_index, sub_inverse = unique_rows(inverse[hit].unsqueeze(1))
                merged = merge_duplicates(self._F[points], sub_index, sub_inverse, mode)
                feats = self._F.new_zeros((n_rows, self._F.shape[1]))
                feats = feats.index_copy(0, inverse[hit][sub_index], merged)
        out = SparseTensor(feats, coordinate_map_key=key, coordinate_manager=manager)
        out.unique_index, out.inverse_mapping = unique_index, inverse
        return out

    def splat(self) -> SparseTensor:
        """Splat every point's features onto its cell's 2^D voxels with n-linear weights (stride 1)."""
        from stseg_models.sparse.interpolation import interpolation_pairs

        key, _ = self._manager.insert_and_map(splat_coordinates(self._C).int())
        rows, points, weights = interpolation_pairs(
            self._manager.get_coordinates(key), key.tensor_stride, self._C
        )
        rows, points, weights = rows.long(), points.long(), weights.to(self._F.dtype)
        n_rows = self._manager.size(key)
        self._splat[key] = (rows, points, weights, (n_rows, len(self)))
        feats = self._F.new_zeros((n_rows, self._F.shape[1]))
        feats = feats.index_add(0, rows, self._F.index_select(0, points) * weights[:, None])
        return SparseTensor(feats, coordinate_map_key=key, coordinate_manager=self._manager)


def slice_to_field(sparse: SparseTensor, field: TensorField) -> TensorField:
    """Features of `sparse` at each point of `field` (zeros for points outside every voxel)."""
    if not isinstance(field, TensorField):
        raise SparseInputError(f"slice() expects a TensorField, got {type(field).__name__}")
    same_manager([sparse, field], "slice")
    manager = sparse.coordinate_manager
    if manager.exists_field_to_sparse(field._key, sparse.coordinate_map_key):
        inverse = manager.field_inverse(field._key, sparse.coordinate_map_key)
    else:  # a different set: find each point's voxel at this tensor stride
        coords = (
            torch.floor(field.C.double()).long() if field.C.is_floating_point() else field.C.long()
        )
        stride = torch.tensor(sparse.tensor_stride, device=coords.device).clamp(min=1)
        inverse = lookup(floor_to_stride(coords, stride), sparse.C.long())
    feats = sparse.F[inverse.clamp(min=0)] * (inverse >= 0).unsqueeze(1).to(sparse.F.dtype)
    return field._with(feats)


def interpolate_field(sparse: SparseTensor, field: TensorField) -> TensorField:
    """Features of `sparse` at `field`'s points: the splat weights if splatted here, else n-linear."""
    splat = field._splat.get(sparse.coordinate_map_key)
    if splat is None:
        return field._with(sparse.features_at_coordinates(field.C))
    rows, points, weights, _size = splat
    feats = sparse.F.new_zeros((len(field), sparse.F.shape[1]))
    feats = feats.index_add(0, points, sparse.F.index_select(0, rows) * weights[:, None])
    return field._with(feats)
