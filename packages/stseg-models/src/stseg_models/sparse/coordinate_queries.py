"""MinkowskiEngine 0.5.4's public `CoordinateManager` queries, mixed into `CoordinateManager`.

Signatures and return types follow MinkowskiEngine's ``MinkowskiCoordinateManager.py``:
``kernel_map`` returns ``{kernel_index: int64 [2, n]}`` (row 0 input rows, row 1 output rows, only
offsets with pairs); ``origin_map`` / ``stride_map`` / ``union_map`` return index tensors; the
field methods manage continuous coordinate sets (`TensorField`). Row order inside each index tensor
is the engine's (sorted by output row within an offset); MinkowskiEngine's follows its hash
tables, so compare pairs as sets.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import floor_to_stride, lookup, unique_rows
from stseg_models.sparse.kernel import KernelGenerator, RegionType

if TYPE_CHECKING:
    from stseg_models.sparse.coordinate_manager import CoordinateMapKey
    from stseg_models.sparse.kernel_map import KernelMap

_random_ids = itertools.count()


class CoordinateQueries:
    """Query methods; expects the attributes and core methods of `CoordinateManager`."""

    D: int
    _coords: dict
    _fields: dict
    _field_maps: dict

    if TYPE_CHECKING:  # provided by CoordinateManager

        def get_coordinates(self, key: Any) -> torch.Tensor: ...
        def _get_coordinate_map_key(self, key: Any) -> CoordinateMapKey: ...
        def insert_unique(self, coords: torch.Tensor, tensor_stride: Sequence[int], string_id: str = "") -> CoordinateMapKey: ...  # fmt: skip
        def _new_key(self, tensor_stride: tuple[int, ...], string_id: str, field: bool = False) -> CoordinateMapKey: ...  # fmt: skip
        def kernel_map_for(self, in_key: CoordinateMapKey, out_key: CoordinateMapKey, generator: KernelGenerator, is_transpose: bool = False) -> KernelMap: ...  # fmt: skip

    # -- kernel maps -----------------------------------------------------------------------------
    def kernel_map(
        self,
        in_key: Any,
        out_key: Any,
        stride: Any = 1,
        kernel_size: Any = 3,
        dilation: Any = 1,
        region_type: RegionType = RegionType.HYPER_CUBE,
        region_offset: torch.Tensor | None = None,
        is_transpose: bool = False,
        is_pool: bool = False,
    ) -> Any:
        """MinkowskiEngine's kernel map: ``{k: int32 [2, n]}``, row 0 input rows, row 1 output rows.

        Keys may be `CoordinateMapKey`s or tensor strides. A transposed map is the forward map from
        the output to the input, inputs and outputs swapped. Called with a `KernelGenerator` as third
        argument (the engine's layers), it returns the cached `KernelMap` instead.
        """
        if isinstance(stride, KernelGenerator):  # internal form: kernel_map(in, out, gen, transp.)
            return self.kernel_map_for(in_key, out_key, stride, kernel_size is True or is_transpose)
        in_key = self._get_coordinate_map_key(in_key)
        out_key = self._get_coordinate_map_key(out_key)
        if isinstance(kernel_size, int) and kernel_size == 1:
            region_type = RegionType.HYPER_CUBE  # MinkowskiEngine: a size-1 region is a cube
        offsets = None if region_offset is None or region_offset.numel() == 0 else region_offset
        gen = KernelGenerator(
            kernel_size,
            stride,
            dilation,
            is_transpose=is_transpose,
            region_type=region_type,
            region_offsets=offsets,
            dimension=self.D,
        )
        kmap = self.kernel_map_for(in_key, out_key, gen, is_transpose)
        pairs = [torch.stack([i.int(), o.int()]) for i, o in kmap.pairs()]
        if is_pool and gen.kernel_size == gen.kernel_stride and not is_transpose:
            # MinkowskiEngine serves a kernel == stride pooling map as one stride map, index 0
            return {0: torch.cat(pairs, dim=1)} if kmap.in_idx.numel() else {}
        # ascending offsets (MinkowskiEngine's dict follows its hash table: compare by key)
        return {k: p for k, p in enumerate(pairs) if p.shape[1]}

    def get_kernel_map(self, *args: Any, **kwargs: Any) -> dict[int, torch.Tensor]:
        """Deprecated alias of `kernel_map` (as in MinkowskiEngine)."""
        warnings.warn(
            "`get_kernel_map` will be deprecated. Please use `kernel_map` instead.", stacklevel=2
        )
        return self.kernel_map(*args, **kwargs)

    # -- origin (one row per batch index) -------------------------------------------------------
    def _batch_source(self) -> torch.Tensor:
        for coords in list(self._coords.values()) + list(self._fields.values()):
            return coords
        raise SparseInputError("the coordinate manager holds no coordinates")

    def origin(self) -> CoordinateMapKey:
        """Key of the origin set: one row ``(b, 0, ..., 0)`` per batch index, sorted, stride 0."""
        return self.origin_for(torch.unique(self._batch_source()[:, 0].long()))

    def origin_for(self, batch_ids: torch.Tensor) -> CoordinateMapKey:
        """The origin set of these sorted batch indices [B], created once and shared (global
        pooling outputs of one pass share it, so they can be concatenated)."""
        from stseg_models.sparse.coordinate_manager import CoordinateMapKey

        coords = torch.zeros(
            (batch_ids.numel(), self.D + 1), dtype=torch.int32, device=batch_ids.device
        )
        coords[:, 0] = batch_ids.to(torch.int32)
        stride = (0,) * self.D
        for key, existing in self._coords.items():
            if key.tensor_stride == stride and torch.equal(existing, coords):
                return key
        if CoordinateMapKey(stride, "") not in self._coords:
            self._coords[CoordinateMapKey(stride, "")] = coords
            return CoordinateMapKey(stride, "")
        return self.insert_unique(coords, stride, "origin")

    origin_field = origin  # the field manager's origin is the same per-batch set here

    @staticmethod
    def _rows_per_batch(batch: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(present batch indices, rows per batch index 0..max): like MinkowskiEngine, one entry per
        index up to the largest, an empty one for an index without rows, so that entry b pairs
        with batch b (the indices tensor lists only the present ones, as MinkowskiEngine's)."""
        ids = torch.unique(batch)
        order = torch.argsort(batch, stable=True)
        if ids.numel() and int(ids[0]) >= 0:
            counts = torch.bincount(batch)  # length max + 1, zeros for the missing indices
        else:  # no rows, or negative batch indices: only the present ones
            counts = torch.bincount(torch.searchsorted(ids, batch), minlength=ids.numel())
        return ids.int(), list(torch.split(order, counts.tolist()))

    def origin_map(self, key: CoordinateMapKey) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(sorted batch indices [B], per batch the int64 rows of `key` in that batch)."""
        return self._rows_per_batch(self.get_coordinates(key)[:, 0].long())

    def origin_field_map(self, key: CoordinateMapKey) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """`origin_map` of a field (continuous) coordinate set."""
        return self._rows_per_batch(self.get_coordinate_field(key)[:, 0].long())

    # -- other maps -------------------------------------------------------------------------------
    def stride_map(
        self, in_key: CoordinateMapKey, stride_key: CoordinateMapKey
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(input rows [N], row of each in the strided set [N]): every input row's coarse parent."""
        coords = self.get_coordinates(in_key).long()
        target = self.get_coordinates(stride_key).long()
        stride = torch.tensor(stride_key.tensor_stride, device=coords.device).clamp(min=1)
        parent = lookup(floor_to_stride(coords, stride), target)
        rows = torch.arange(coords.shape[0], device=coords.device)
        hit = parent >= 0
        return rows[hit], parent[hit]

    def union_map(
        self, in_keys: Sequence[CoordinateMapKey], out_key: CoordinateMapKey
    ) -> list[torch.Tensor]:
        """Per input set, int64 [2, n]: its rows and their rows in the union set.

        As in MinkowskiEngine, `out_key` is an unset key (``CoordinateMapKey(D + 1)``): the union
        (rows in first-occurrence order over the inputs) is inserted and `out_key` is set to it.
        """
        if not out_key.is_key_set():
            both = torch.cat([self.get_coordinates(k) for k in in_keys])
            first, _ = unique_rows(both)
            stride = in_keys[0].tensor_stride
            new = self.insert_unique(both[first], stride)
            out_key._assign(new)
        target = self.get_coordinates(out_key).long()
        maps = []
        for key in in_keys:
            rows = lookup(self.get_coordinates(key).long(), target)
            hit = (rows >= 0).nonzero().squeeze(1)
            maps.append(torch.stack([hit, rows[hit]]))
        return maps

    def interpolation_map_weight(
        self, key: CoordinateMapKey, samples: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(rows of `key` [P], sample rows [P], n-linear weights [P]) of each sample's corners."""
        from stseg_models.sparse.interpolation import interpolation_pairs

        return interpolation_pairs(self.get_coordinates(key), key.tensor_stride, samples)

    def get_unique_coordinate_map_key(
        self, tensor_stride: int | Sequence[int]
    ) -> tuple[list[int], str]:
        """``(tensor_stride, string_id)`` that no set of this manager uses (MinkowskiEngine returns
        this pair, not a key: ``CoordinateMapKey(*pair)`` makes one)."""
        from stseg_models.sparse.coordinate_manager import as_stride

        key = self._new_key(as_stride(tensor_stride, self.D), f"{next(_random_ids):08x}")
        return list(key.tensor_stride), key.string_id

    # -- fields (continuous coordinates) ------------------------------------------------------------
    def insert_field(
        self, coordinates: torch.Tensor, tensor_stride: int | Sequence[int] = 1, string_id: str = ""
    ) -> CoordinateMapKey:
        """Register continuous coordinates [N, 1+D] (kept as given); returns their field key."""
        from stseg_models.sparse.coordinate_manager import as_stride

        key = self._new_key(as_stride(tensor_stride, self.D), string_id, field=True)
        self._fields[key] = coordinates
        return key

    def get_coordinate_field(self, key: CoordinateMapKey) -> torch.Tensor:
        """Continuous coordinates [N, 1+D] of a field key."""
        try:
            return self._fields[key]
        except KeyError:
            raise SparseInputError(f"field key {key} is not in this coordinate manager") from None

    def _quantise_field(self, field_key: CoordinateMapKey, stride: Sequence[int]) -> torch.Tensor:
        coords = self.get_coordinate_field(field_key)
        coords = (
            torch.floor(coords.double()).long() if coords.is_floating_point() else coords.long()
        )
        return floor_to_stride(coords, torch.tensor(list(stride), device=coords.device))

    def field_to_sparse_insert_and_map(
        self,
        field_map_key: CoordinateMapKey,
        sparse_tensor_stride: int | Sequence[int] = 1,
        sparse_tensor_string_id: str = "",
    ) -> tuple[CoordinateMapKey, tuple[torch.Tensor, torch.Tensor]]:
        """Quantise a field to a new sparse set: (key, (unique_index [M], inverse_mapping [N]))."""
        from stseg_models.sparse.coordinate_manager import as_stride

        stride = as_stride(sparse_tensor_stride, self.D)
        coords = self._quantise_field(field_map_key, stride)
        unique_index, inverse = unique_rows(coords)
        key = self.insert_unique(coords[unique_index], stride, sparse_tensor_string_id)
        self._field_maps[(field_map_key, key)] = inverse
        return key, (unique_index, inverse)

    def exists_field_to_sparse(
        self, field_map_key: CoordinateMapKey, sparse_map_key: CoordinateMapKey
    ) -> bool:
        return (field_map_key, sparse_map_key) in self._field_maps

    def field_to_sparse_keys(self, field_map_key: CoordinateMapKey) -> list[CoordinateMapKey]:
        return [s for f, s in self._field_maps if f == field_map_key]

    def field_inverse(
        self, field_map_key: CoordinateMapKey, sparse_map_key: CoordinateMapKey
    ) -> torch.Tensor:
        """int64 [N]: the row of the sparse set each point's voxel is (-1 where it is absent)."""
        inverse = self._field_maps.get((field_map_key, sparse_map_key))
        if inverse is None:
            coords = self._quantise_field(field_map_key, sparse_map_key.tensor_stride)
            inverse = lookup(coords, self.get_coordinates(sparse_map_key).long())
        return inverse

    def field_to_sparse_map(
        self, field_map_key: CoordinateMapKey, sparse_map_key: CoordinateMapKey
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(sparse rows [P] int32, point rows [P] int32): each point that falls in the set, its row."""
        inverse = self.field_inverse(field_map_key, sparse_map_key)
        points = (inverse >= 0).nonzero().squeeze(1)
        return inverse[points].int(), points.int()

    def get_field_to_sparse_map(
        self, field_map_key: CoordinateMapKey, sparse_map_key: CoordinateMapKey
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(unique_index [M]: first point of each row, inverse_mapping [N]: row of each point), int64.

        Rows no point falls in get -1 in unique_index; points outside the set get -1 in the inverse.
        """
        inverse = self.field_inverse(field_map_key, sparse_map_key)
        n_rows = int(self.get_coordinates(sparse_map_key).shape[0])
        points = torch.arange(inverse.numel(), device=inverse.device)
        unique = torch.full((n_rows,), inverse.numel(), dtype=torch.int64, device=inverse.device)
        hit = inverse >= 0
        unique.scatter_reduce_(0, inverse[hit], points[hit], reduce="amin", include_self=True)
        return unique.masked_fill(unique == inverse.numel(), -1), inverse
