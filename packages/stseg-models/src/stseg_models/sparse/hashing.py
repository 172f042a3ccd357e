"""Vectorised coordinate hashing: integer coordinates -> one int64 key per row.

Keys are mixed-radix numbers over a bounding box, so they are *linear* in the coordinates:
``key(p + d) = key(p) + key_delta(d)`` as long as ``p + d`` stays inside the box. That lets a kernel
map query every neighbour offset with one broadcast addition and one `searchsorted`, with no
per-point Python loop, on CPU and CUDA alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from stseg_models.sparse.errors import SparseInputError

_MAX_KEY = 2**62
# largest bounding box (cells) for a dense key -> row lookup table: 2**25 int32 entries = 128 MiB,
# freed right after use; larger boxes fall back to sorting
DENSE_TABLE_MAX = 2**25
# most rows `unique_rows` deduplicates with a dictionary on CPU (`small.small_unique_rows`)
SMALL_ROWS = 256


@dataclass(frozen=True)
class Box:
    """Mixed-radix hashing box: ``lo`` [C] lowest value and ``mult`` [C] place value per column."""

    lo: torch.Tensor
    mult: torch.Tensor
    volume: int

    def keys(self, coords: torch.Tensor) -> torch.Tensor:
        """int64 keys [N] of integer coordinates [N, C] that lie inside the box."""
        return ((coords.long() - self.lo) * self.mult).sum(dim=1)

    def delta(self, offsets: torch.Tensor) -> torch.Tensor:
        """Key increments [K] of integer offsets [K, C]."""
        return (offsets.long() * self.mult).sum(dim=1)


def check_extents(sizes: list[int]) -> None:
    """Raise unless a box of these per-column sizes has fewer than 2**62 cells (int64 keys)."""
    total = 1
    for size in sizes:
        total *= size
    if total >= _MAX_KEY:
        raise SparseInputError(
            f"coordinate extents {sizes} are too large to index (product must stay below 2**62); "
            "check the coordinates are voxel indices, not raw positions"
        )


def make_box(lo: torch.Tensor, hi: torch.Tensor) -> Box:
    """Box covering ``lo..hi`` (inclusive, per column); raises if keys would overflow int64."""
    extent = (hi.long() - lo.long() + 1).clamp(min=1)
    sizes = [
        int(v) for v in extent.tolist()
    ]  # one host sync per box (boxes are built per cached map)
    check_extents(sizes)
    total = 1
    mults = []
    for size in reversed(sizes):  # last column varies fastest in key order
        mults.append(total)
        total *= size
    mult = torch.tensor(list(reversed(mults)), dtype=torch.int64, device=lo.device)
    return Box(lo=lo.long(), mult=mult, volume=total)


def box_of(*coord_sets: torch.Tensor) -> Box:
    """Smallest box containing every row of every [N, C] coordinate set."""
    lo = torch.stack([c.long().amin(dim=0) for c in coord_sets if c.shape[0] > 0]).amin(dim=0)
    hi = torch.stack([c.long().amax(dim=0) for c in coord_sets if c.shape[0] > 0]).amax(dim=0)
    return make_box(lo, hi)


def unique_rows(coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Deduplicate integer rows keeping the order of first occurrence.

    Returns ``(unique_index [M], inverse [N])``: ``coords[unique_index]`` are the unique rows, each
    at its first occurrence, in the order they first appear; ``inverse[i]`` is the row of
    ``coords[i]`` among them. Rows whose keys already increase strictly are unique as they stand;
    otherwise a dense key -> first-row table finds the first occurrences in O(N + box volume) when
    the box is small enough, and a sort does it in general.
    """
    n = coords.shape[0]
    device = coords.device
    if n == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return empty, empty
    if n <= SMALL_ROWS and device.type == "cpu":
        # a few rows: a dictionary beats ~15 tensor operations' dispatch (`small`)
        from stseg_models.sparse.small import small_unique_rows

        return small_unique_rows(coords)
    box = box_of(coords)
    keys = box.keys(coords)
    rows = torch.arange(n, device=device)
    if n == 1 or bool((keys[1:] > keys[:-1]).all()):
        return rows, rows.clone()
    if box.volume <= DENSE_TABLE_MAX:
        table = torch.full((box.volume,), n, dtype=torch.int32, device=device)
        table.scatter_reduce_(0, keys, rows.int(), reduce="amin")
        first = table[keys].long()  # first row holding each row's coordinates
        del table
        is_first = first == rows
        rank = torch.cumsum(is_first, 0) - 1
        return is_first.nonzero().squeeze(1), rank[first]
    uniq, inv_sorted = torch.unique(keys, return_inverse=True)
    first = torch.full((uniq.shape[0],), n, dtype=torch.int64, device=device)
    first.scatter_reduce_(0, inv_sorted, rows, reduce="amin")
    order = torch.argsort(first)  # unique keys ranked by first occurrence
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.shape[0], device=device)
    return first[order], rank[inv_sorted]


def floor_to_stride(coords: torch.Tensor, stride: torch.Tensor) -> torch.Tensor:
    """Floor spatial columns (all but the first, batch) of [N, 1+D] coordinates to multiples of stride [D]."""
    out = coords.clone()
    s = stride.to(coords.dtype)
    out[:, 1:] = torch.div(coords[:, 1:], s, rounding_mode="floor") * s
    return out


def lookup(query: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Row of each query [M, C] in table [N, C] (unique rows), -1 when absent."""
    if table.shape[0] == 0 or query.shape[0] == 0:
        return torch.full((query.shape[0],), -1, dtype=torch.int64, device=query.device)
    box = box_of(query, table)
    tkeys, perm = torch.sort(box.keys(table))
    qkeys = box.keys(query)
    pos = torch.searchsorted(tkeys, qkeys).clamp_(max=tkeys.shape[0] - 1)
    found = tkeys[pos] == qkeys
    return torch.where(found, perm[pos], torch.full_like(pos, -1))
