"""Coordinate manager: owns every coordinate set of a network pass and caches derived data.

Coordinate sets are keyed by `CoordinateMapKey` (tensor stride + string id). The manager caches
strided sets (a stride-2 convolution and a stride-2 pooling of the same input share one output set)
and kernel maps keyed by (input key, output key, kernel offsets, dilation, transposed), so a map
is built once per forward pass however many layers use it.

Output sets of the layers (MinkowskiEngine 0.5.4 rules):

* strided: the input coordinates floored to the new stride (`stride`), rows in first-occurrence order;
* transposed (input at tensor stride t, kernel stride s): the set keyed (t / s, "") of this manager,
  whatever the input key's suffix; when the manager holds none (a tensor created directly at
  ``tensor_stride=2``), the kernel footprint of every input coordinate at t / s, generated and
  inserted under that key, as MinkowskiEngine does (`transpose_target`);
* generative (``expand_coordinates=True``): always a new set, the kernel footprint of every input
  coordinate (`expand`).

The MinkowskiEngine-facing queries (``kernel_map`` with MinkowskiEngine's signature, ``origin_map``,
field maps, ...) live in `coordinate_queries.CoordinateQueries`, mixed in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from stseg_models.sparse.coordinate_queries import CoordinateQueries
from stseg_models.sparse.errors import SparseInputError
from stseg_models.sparse.hashing import SMALL_ROWS, floor_to_stride, unique_rows
from stseg_models.sparse.kernel import KernelGenerator
from stseg_models.sparse.kernel_map import KernelMap, build_kernel_map
from stseg_models.sparse.small import small_strided_rows


@dataclass(frozen=True)
class CoordinateMapKey:
    """Identity of one coordinate set: tensor stride per axis and a string id ('' by default).

    ``CoordinateMapKey([2, 2, 2], "")`` names a set; ``CoordinateMapKey(4)`` (a coordinate size) is
    MinkowskiEngine's unset placeholder key (``is_key_set()`` is False).
    """

    tensor_stride: tuple[int, ...]
    string_id: str = ""
    coordinate_size: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        ts: Any = self.tensor_stride
        if isinstance(ts, int):  # MinkowskiEngine's CoordinateMapKey(coordinate_size): unset key
            object.__setattr__(self, "coordinate_size", int(ts))
            object.__setattr__(self, "tensor_stride", ())
            return
        if isinstance(ts, torch.Tensor):
            ts = ts.tolist()
        object.__setattr__(self, "tensor_stride", tuple(int(s) for s in ts))
        object.__setattr__(self, "coordinate_size", len(self.tensor_stride) + 1)

    def get_tensor_stride(self) -> list[int]:
        return list(self.tensor_stride)

    def get_key(self) -> tuple[list[int], str]:
        return list(self.tensor_stride), self.string_id

    def get_coordinate_size(self) -> int:
        return self.coordinate_size

    def is_key_set(self) -> bool:
        return len(self.tensor_stride) > 0

    def _assign(self, other: CoordinateMapKey) -> None:
        """Set an unset placeholder key to `other` (MinkowskiEngine's out-parameter keys)."""
        if self.is_key_set():
            raise SparseInputError(f"coordinate map key {self} is already set")
        object.__setattr__(self, "tensor_stride", other.tensor_stride)
        object.__setattr__(self, "string_id", other.string_id)
        object.__setattr__(self, "coordinate_size", other.coordinate_size)

    def __repr__(self) -> str:
        sid = f":{self.string_id}" if self.string_id else ""
        return f"coordinate map key:{list(self.tensor_stride)}{sid}"


def as_stride(value: int | Sequence[int] | torch.Tensor, dimension: int) -> tuple[int, ...]:
    """A scalar or per-axis stride as a tuple of `dimension` ints (numpy / tensors accepted)."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if isinstance(value, int) or (hasattr(value, "__int__") and not hasattr(value, "__len__")):
        return (int(value),) * dimension  # type: ignore[arg-type]
    items = tuple(int(v) for v in value)  # type: ignore[union-attr]
    if len(items) != dimension:
        raise SparseInputError(f"stride {list(items)} must have {dimension} entries")
    return items


class CoordinateManager(CoordinateQueries):
    """Coordinate sets and kernel-map cache for `D`-dimensional sparse tensors (MinkowskiEngine-like)."""

    def __init__(self, D: int = -1, num_threads: int = -1, **_ignored: object) -> None:
        if not isinstance(D, int) or D < 1:
            raise SparseInputError(
                f"CoordinateManager dimension D must be a positive integer, got {D!r}"
            )
        self.D = D
        self._coords: dict[CoordinateMapKey, torch.Tensor] = {}
        self._strided: dict[tuple[CoordinateMapKey, tuple[int, ...]], CoordinateMapKey] = {}
        self._kernel_maps: dict[tuple, KernelMap] = {}
        # (TensorField id, sparse key) -> inverse map [N] of a field quantised to that key
        self._field_maps: dict[tuple[int, CoordinateMapKey], torch.Tensor] = {}
        # field key -> continuous coordinates [N, 1+D] (`insert_field`)
        self._fields: dict[CoordinateMapKey, torch.Tensor] = {}

    # -- coordinate sets ------------------------------------------------------------------------
    def _new_key(
        self, tensor_stride: tuple[int, ...], string_id: str, field: bool = False
    ) -> CoordinateMapKey:
        """A free key (sets and fields are separate namespaces, as in MinkowskiEngine)."""
        taken = self._fields if field else self._coords
        key = CoordinateMapKey(tensor_stride, string_id)
        n = 1
        while key in taken:
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
        self,
        coordinates: torch.Tensor,
        tensor_stride: int | Sequence[int] = 1,
        string_id: str = "",
    ) -> tuple[CoordinateMapKey, tuple[torch.Tensor, torch.Tensor]]:
        """Insert coordinates [N, 1+D]; returns (key, (unique_index [M], inverse_mapping [N])).

        ``coordinates[unique_index]`` are the stored rows (first occurrences, in order) and
        ``coordinates == coordinates[unique_index][inverse_mapping]``.
        """
        from stseg_models.sparse.validation import check_coordinates

        coords = check_coordinates(coordinates, self.D, int(coordinates.shape[0]))
        unique_index, inverse = unique_rows(coords)
        key = self.insert_unique(coords[unique_index], as_stride(tensor_stride, self.D), string_id)
        return key, (unique_index, inverse)

    def get_coordinates(self, key: CoordinateMapKey | int | Sequence[int]) -> torch.Tensor:
        """int32 [N, 1+D] coordinates of a set (by key, or the first set at a tensor stride)."""
        key = self._get_coordinate_map_key(key)
        try:
            return self._coords[key]
        except KeyError:
            raise SparseInputError(
                f"coordinate key {key} is not in this coordinate manager"
            ) from None

    def size(self, key: CoordinateMapKey) -> int:
        """Number of rows of a set (or, if no set has the key, of a field)."""
        if key not in self._coords and key in self._fields:
            return int(self._fields[key].shape[0])
        return int(self.get_coordinates(key).shape[0])

    def get_coordinate_map_keys(
        self, tensor_stride: int | Sequence[int] | None = None
    ) -> list[CoordinateMapKey]:
        """Keys of the coordinate sets, in insertion order (only those at `tensor_stride` if given)."""
        if tensor_stride is None:
            return list(self._coords)
        stride = as_stride(tensor_stride, self.D)
        return [k for k in self._coords if k.tensor_stride == stride]

    def _get_coordinate_map_key(
        self, key: CoordinateMapKey | int | Sequence[int]
    ) -> CoordinateMapKey:
        """The key itself, or the first set inserted at a tensor stride (MinkowskiEngine's lookup)."""
        if isinstance(key, CoordinateMapKey):
            return key
        keys = self.get_coordinate_map_keys(key)
        if not keys:
            raise SparseInputError(f"no coordinate set at tensor stride {key} in this manager")
        return keys[0]

    def number_of_unique_batch_indices(self) -> int:
        first = next(iter(self._coords.values()), None)
        return 0 if first is None else int(torch.unique(first[:, 0]).numel())

    def stride(
        self,
        coordinate_map_key: CoordinateMapKey,
        stride: int | Sequence[int] | torch.Tensor,
        string_id: str = "",
    ) -> CoordinateMapKey:
        """Key of the set floored to ``key.tensor_stride * stride`` (created once, then cached)."""
        key = coordinate_map_key
        step = as_stride(stride, self.D)
        cached = self._strided.get((key, step))
        if cached is not None:
            return cached
        new_stride = tuple(a * b for a, b in zip(key.tensor_stride, step, strict=True))
        coords = self.get_coordinates(key)
        if 0 < coords.shape[0] <= SMALL_ROWS and coords.device.type == "cpu":
            rows = small_strided_rows(coords, new_stride)  # a few rows: no tensor-op dispatch
        else:
            floored = floor_to_stride(coords.long(), torch.tensor(new_stride, device=coords.device))
            unique_index, _ = unique_rows(floored)
            rows = floored[unique_index]
        out = self.insert_unique(rows, new_stride, string_id or key.string_id)
        self._strided[(key, step)] = out
        return out

    def expand(
        self,
        key: CoordinateMapKey,
        generator: KernelGenerator,
        out_tensor_stride: Sequence[int],
        region_tensor_stride: Sequence[int] | None = None,
    ) -> CoordinateMapKey:
        """New set: every input coordinate plus every kernel offset, at `out_tensor_stride`.

        Offsets are scaled by `region_tensor_stride` (default: the output stride) times the
        dilation. When the region is finer than the output (a strided convolution with
        ``expand_coordinates``), only the generated coordinates that are multiples of the output
        stride are kept, as MinkowskiEngine 0.5.4 does. Rows: input row-major, kernel order within a
        row, each coordinate at its first occurrence (MinkowskiEngine's order follows its hash
        table and is not defined).
        """
        coords = self.get_coordinates(key).long()
        scale = region_tensor_stride if region_tensor_stride is not None else out_tensor_stride
        step = torch.tensor(
            [a * b for a, b in zip(scale, generator.kernel_dilation, strict=True)],
            device=coords.device,
        )
        offsets = generator.region_offsets.to(coords.device) * step  # [K, D]
        spatial = coords[:, None, 1:] + offsets[None]  # [N, K, D]
        batch = coords[:, None, :1].expand(-1, offsets.shape[0], 1)
        every = torch.cat([batch, spatial], dim=2).reshape(-1, self.D + 1)
        if any(o != r for o, r in zip(out_tensor_stride, scale, strict=True)):
            out_step = torch.tensor(list(out_tensor_stride), device=coords.device)
            every = every[(every[:, 1:] % out_step == 0).all(dim=1)]
        unique_index, _ = unique_rows(every)
        return self.insert_unique(every[unique_index], tuple(out_tensor_stride))

    @staticmethod
    def transpose_stride(key: CoordinateMapKey, stride: Sequence[int]) -> tuple[int, ...]:
        """Tensor stride of a transposed layer's output: ``key.tensor_stride / stride`` (exact)."""
        target = []
        for ts, s in zip(key.tensor_stride, stride, strict=True):
            if ts % s != 0:
                raise SparseInputError(
                    f"transposed stride {tuple(stride)} does not divide tensor stride {key.tensor_stride}"
                )
            target.append(ts // s)
        return tuple(target)

    def transpose_target(
        self,
        key: CoordinateMapKey,
        stride: Sequence[int],
        generator: KernelGenerator | None = None,
    ) -> CoordinateMapKey:
        """Finer set at ``key.tensor_stride / stride`` for a transposed convolution or unpooling.

        MinkowskiEngine 0.5.4's rule (measured): the set keyed ``(finer stride, "")`` whatever the
        input's string id; if there is none, the kernel footprint of every input coordinate at the
        finer stride (needs `generator`), inserted under that key so later transposes reuse it. A
        U-Net built from a tensor with the default id lands on the sets of its way down, so skip
        connections align row for row. Without a generator (engine-internal callers) and no such
        set, the set `key` was strided from, or any set at the finer stride, is used.
        """
        if all(s == 1 for s in stride):
            return key
        target = self.transpose_stride(key, stride)
        default = CoordinateMapKey(target, "")
        if default in self._coords:
            return default
        if generator is not None:
            return self.expand(key, generator, target)
        for (source, _step), strided in self._strided.items():  # the set this one came from, if any
            if strided == key and source.tensor_stride == target:
                return source
        candidates = [k for k in self._coords if k.tensor_stride == target]
        if candidates:
            return candidates[0]
        raise SparseInputError(
            f"no coordinates at tensor stride {target} in this coordinate manager"
        )

    # -- kernel maps -----------------------------------------------------------------------------
    def kernel_map_for(
        self,
        in_key: CoordinateMapKey,
        out_key: CoordinateMapKey,
        generator: KernelGenerator,
        is_transpose: bool = False,
    ) -> KernelMap:
        """Cached kernel map; for a transposed map, the forward map from out_key to in_key, transposed.

        The engine's internal form (a `KernelMap`); ``kernel_map`` is MinkowskiEngine's signature.
        """
        cache_key = (in_key, out_key, generator.signature(), is_transpose)
        kmap = self._kernel_maps.get(cache_key)
        if kmap is None:
            if is_transpose:  # shares the forward map's index tensors (see `KernelMap.reversed`)
                kmap = self.kernel_map_for(out_key, in_key, generator).transposed()
            else:
                src_coords, dst_coords = self.get_coordinates(in_key), self.get_coordinates(out_key)
                offsets = generator.scaled_offsets(in_key.tensor_stride).to(src_coords.device)
                kmap = build_kernel_map(src_coords, dst_coords, offsets, same_set=in_key == out_key)
            self._kernel_maps[cache_key] = kmap
        return kmap

    def __repr__(self) -> str:
        sets = ", ".join(
            f"{k.tensor_stride}{k.string_id!r}:{v.shape[0]}" for k, v in self._coords.items()
        )
        return f"CoordinateManager(D={self.D}, sets=[{sets}], kernel_maps={len(self._kernel_maps)})"
