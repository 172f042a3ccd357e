"""Coordinate manager: owns every coordinate set of a network pass and caches derived data.

Coordinate sets are keyed by `CoordinateMapKey` (tensor stride + string id). The manager caches
strided sets (a stride-2 convolution and a stride-2 pooling of the same input share one output set)
and kernel maps keyed by (input key, output key, kernel offsets, dilation, transposed), so a map
is built once per forward pass however many layers use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import floor_to_stride, unique_rows
from stseg_models.sparse.kernel import KernelGenerator
from stseg_models.sparse.kernel_map import KernelMap, build_kernel_map


@dataclass(frozen=True)
class CoordinateMapKey:
    """Identity of one coordinate set: tensor stride per axis and a string id ('' by default)."""

    tensor_stride: tuple[int, ...]
    string_id: str = ""

    def get_tensor_stride(self) -> list[int]:
        return list(self.tensor_stride)

    def get_key(self) -> tuple[list[int], str]:
        return list(self.tensor_stride), self.string_id

    def get_coordinate_size(self) -> int:
        return len(self.tensor_stride) + 1


class CoordinateManager:
    """Coordinate sets and kernel-map cache for `D`-dimensional sparse tensors (MinkowskiEngine-like)."""

    def __init__(self, D: int = -1, **_ignored: object) -> None:
        if not isinstance(D, int) or D < 1:
            raise SparseInputError(
                f"CoordinateManager dimension D must be a positive integer, got {D!r}"
            )
        self.D = D
        self._coords: dict[CoordinateMapKey, torch.Tensor] = {}
        self._strided: dict[tuple[CoordinateMapKey, tuple[int, ...]], CoordinateMapKey] = {}
        self._kernel_maps: dict[tuple, KernelMap] = {}
        self._field_maps: dict[tuple[int, CoordinateMapKey], torch.Tensor] = {}

    # -- coordinate sets ------------------------------------------------------------------------
    def _new_key(self, tensor_stride: tuple[int, ...], string_id: str) -> CoordinateMapKey:
        key = CoordinateMapKey(tensor_stride, string_id)
        n = 1
        while key in self._coords:
            key = CoordinateMapKey(tensor_stride, f"{string_id}_{n}")
            n += 1
        return key

    def insert_unique(
        self, coords: torch.Tensor, tensor_stride: Sequence[int], string_id: str = ""
    ) -> CoordinateMapKey:
        """Register rows that are already unique; returns their new key."""
        key = self._new_key(tuple(int(s) for s in tensor_stride), string_id)
        self._coords[key] = coords.to(torch.int32).contiguous()
        return key

    def insert_and_map(
        self, coordinates: torch.Tensor, tensor_stride: int | Sequence[int] = 1, string_id: str = ""
    ) -> tuple[CoordinateMapKey, tuple[torch.Tensor, torch.Tensor]]:
        """Insert coordinates [N, 1+D]; returns (key, (unique_index [M], inverse_mapping [N]))."""
        stride = (
            (tensor_stride,) * self.D if isinstance(tensor_stride, int) else tuple(tensor_stride)
        )
        unique_index, inverse = unique_rows(coordinates)
        return self.insert_unique(coordinates[unique_index], stride, string_id), (
            unique_index,
            inverse,
        )

    def get_coordinates(self, key: CoordinateMapKey) -> torch.Tensor:
        """int32 [N, 1+D] coordinates of a set."""
        try:
            return self._coords[key]
        except KeyError:
            raise SparseInputError(
                f"coordinate key {key} is not in this coordinate manager"
            ) from None

    def size(self, key: CoordinateMapKey) -> int:
        return int(self.get_coordinates(key).shape[0])

    def get_coordinate_map_keys(self) -> list[CoordinateMapKey]:
        return list(self._coords)

    def number_of_unique_batch_indices(self) -> int:
        first = next(iter(self._coords.values()), None)
        return 0 if first is None else int(torch.unique(first[:, 0]).numel())

    def stride(self, key: CoordinateMapKey, stride: Sequence[int]) -> CoordinateMapKey:
        """Key of the set floored to ``key.tensor_stride * stride`` (created once, then cached)."""
        stride = tuple(int(s) for s in stride)
        cached = self._strided.get((key, stride))
        if cached is not None:
            return cached
        new_stride = tuple(a * b for a, b in zip(key.tensor_stride, stride, strict=True))
        coords = self.get_coordinates(key)
        floored = floor_to_stride(coords.long(), torch.tensor(new_stride, device=coords.device))
        unique_index, _ = unique_rows(floored)
        out = self.insert_unique(floored[unique_index], new_stride, key.string_id)
        self._strided[(key, stride)] = out
        return out

    def transpose_target(self, key: CoordinateMapKey, stride: Sequence[int]) -> CoordinateMapKey:
        """Cached finer set at ``key.tensor_stride / stride`` for a transposed convolution or unpooling."""
        if all(s == 1 for s in stride):
            return key
        target = []
        for ts, s in zip(key.tensor_stride, stride, strict=True):
            if ts % s != 0:
                raise SparseInputError(
                    f"transposed stride {tuple(stride)} does not divide tensor stride {key.tensor_stride}"
                )
            target.append(ts // s)
        for (source, _step), strided in self._strided.items():  # the set this one came from, if any
            if strided == key and source.tensor_stride == tuple(target):
                return source
        candidates = [k for k in self._coords if k.tensor_stride == tuple(target)]
        preferred = [k for k in candidates if k.string_id == key.string_id]
        if preferred or candidates:
            return (preferred or candidates)[0]
        raise SparseInputError(
            f"no coordinates at tensor stride {tuple(target)} in this coordinate manager; a transposed "
            "convolution writes onto the finer coordinates created on the way down"
        )

    # -- kernel maps -----------------------------------------------------------------------------
    def kernel_map(
        self,
        in_key: CoordinateMapKey,
        out_key: CoordinateMapKey,
        generator: KernelGenerator,
        is_transpose: bool = False,
    ) -> KernelMap:
        """Cached kernel map; for a transposed map, the forward map from out_key to in_key, transposed."""
        cache_key = (in_key, out_key, generator.signature(), is_transpose)
        kmap = self._kernel_maps.get(cache_key)
        if kmap is None:
            if is_transpose:  # shares the forward map's index tensors (see `KernelMap.reversed`)
                kmap = self.kernel_map(out_key, in_key, generator).transposed()
            else:
                scale = torch.tensor(
                    [
                        a * b
                        for a, b in zip(
                            in_key.tensor_stride, generator.kernel_dilation, strict=True
                        )
                    ]
                )
                src_coords, dst_coords = self.get_coordinates(in_key), self.get_coordinates(out_key)
                offsets = (generator.region_offsets * scale).to(src_coords.device)
                kmap = build_kernel_map(src_coords, dst_coords, offsets, same_set=in_key == out_key)
            self._kernel_maps[cache_key] = kmap
        return kmap

    def __repr__(self) -> str:
        sets = ", ".join(
            f"{k.tensor_stride}{k.string_id!r}:{v.shape[0]}" for k, v in self._coords.items()
        )
        return f"CoordinateManager(D={self.D}, sets=[{sets}], kernel_maps={len(self._kernel_maps)})"
