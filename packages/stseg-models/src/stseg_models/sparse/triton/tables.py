"""Per-map index tables the Triton kernels read, built once per `KernelMap` with torch ops.

The engine's map is offset-major pair lists (`KernelMap.in_idx` / `out_idx`, int32, `counts[k]`
pairs for offset k) in which a row appears at most once per offset on either side. So for each
offset every destination row has at most one source row, and a dense table ``[K, N_dst]`` int32
(``-1``: no pair) holds the whole map from the destination's side: the forward reads
``table[k, o] = i`` (input row of output o at offset k); the input gradient reads the same pairs
from the other side, ``table[k, i] = o``, without `KernelMap.reversed`'s sort. The weight gradient
reads the pair lists themselves, with the start of each offset's pairs on the device.

Tables are cached per map object (maps are immutable once built and shared by every layer on the
same pair of sets); an entry goes when its map is garbage-collected.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import torch

from stseg_models.sparse.kernel_map import KernelMap


def neighbour_table(
    src_idx: torch.Tensor, dst_idx: torch.Tensor, counts: list[int], num_dst: int
) -> torch.Tensor:
    """int32 [K, num_dst]: ``table[k, dst_idx[p]] = src_idx[p]`` for the pairs p of offset k, else -1."""
    k_count, device = len(counts), src_idx.device
    table = torch.full((k_count, num_dst), -1, dtype=torch.int32, device=device)
    if src_idx.numel():
        # output_size: no device -> host sync to size the result
        offset = torch.repeat_interleave(
            torch.arange(k_count, device=device),
            torch.tensor(counts, device=device),
            output_size=src_idx.numel(),
        )
        table.view(-1)[offset * num_dst + dst_idx.long()] = src_idx.to(torch.int32)
    return table


def pair_starts(counts: list[int], device: torch.device) -> torch.Tensor:
    """int32 [K + 1]: where each offset's pairs start in the concatenated lists, then the total."""
    starts = [0]
    for c in counts:
        starts.append(starts[-1] + c)
    return torch.tensor(starts, dtype=torch.int32, device=device)


@dataclass
class MapTables:
    """Lazily built tables of one map (see the module docstring); holds the map weakly."""

    ref: weakref.ReferenceType[KernelMap]
    _forward: torch.Tensor | None = field(default=None, repr=False)
    _backward: torch.Tensor | None = field(default=None, repr=False)
    _starts: torch.Tensor | None = field(default=None, repr=False)

    @property
    def kmap(self) -> KernelMap:
        m = self.ref()
        if m is None:  # only reachable through a table kept past its map's life
            raise RuntimeError("the kernel map of these tables no longer exists")
        return m

    def forward(self) -> torch.Tensor:
        """[K, N_out]: input row of each (offset, output row)."""
        if self._forward is None:
            m = self.kmap
            self._forward = neighbour_table(m.in_idx, m.out_idx, m.counts, m.num_out)
        return self._forward

    def backward(self) -> torch.Tensor:
        """[K, N_in]: output row of each (offset, input row)."""
        if self._backward is None:
            m = self.kmap
            self._backward = neighbour_table(m.out_idx, m.in_idx, m.counts, m.num_in)
        return self._backward

    def starts(self) -> torch.Tensor:
        if self._starts is None:
            self._starts = pair_starts(self.kmap.counts, self.kmap.in_idx.device)
        return self._starts


_CACHE: dict[int, MapTables] = {}


def tables_for(kmap: KernelMap) -> MapTables:
    """The cached `MapTables` of `kmap` (keyed by identity: a `KernelMap` is not hashable)."""
    key = id(kmap)
    entry = _CACHE.get(key)
    if entry is None or entry.ref() is not kmap:
        entry = MapTables(weakref.ref(kmap))
        _CACHE[key] = entry
        weakref.finalize(kmap, _CACHE.pop, key, None)  # the entry dies with its map
    return entry
