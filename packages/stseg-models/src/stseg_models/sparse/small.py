"""Tiny coordinate sets on CPU: deduplication and kernel maps with Python dictionaries.

For a few dozen points the vectorised routes (`hashing`, `kernel_map`) cost what their ~50 tensor
operations cost to dispatch (several microseconds each), not arithmetic: a 16-point kernel map took
about a millisecond, MinkowskiEngine's C++ a few tens of microseconds. Below `kernel_map.SMALL_QUERIES`
neighbour queries (`hashing.SMALL_ROWS` rows) one ``tolist()`` and a dictionary do the same work faster. Results are identical
to the vectorised routes': same rows, same pair order (offset-major, output rows ascending within
an offset), same flags, and the same error for coordinates too spread out to hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import mul

import numpy as np
import torch

from stseg_models.sparse.hashing import check_extents
from stseg_models.sparse.kernel_map import KernelMap


def _tensor(values: list, dtype: type[np.integer], like: torch.Tensor) -> torch.Tensor:
    """A tensor of listed ints on `like`'s device; through numpy, several times faster than
    `torch.tensor` on a Python list."""
    out = torch.from_numpy(np.array(values, dtype=dtype))
    return out if like.device.type == "cpu" else out.to(like.device)


def _bounds(rows: Sequence[Sequence[int]]) -> tuple[Sequence[int], Sequence[int]]:
    """Per-column (lowest, highest) values of listed rows (at least one)."""
    if len(rows) == 1:
        return rows[0], rows[0]
    return list(map(min, *rows)), list(map(max, *rows))


def _check_box(lo: Sequence[int], hi: Sequence[int]) -> None:
    """The vectorised routes' overflow check (`hashing.make_box`) on a box ``lo..hi``."""
    check_extents([max(1, h - v + 1) for v, h in zip(lo, hi, strict=True)])


def small_unique_rows(coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`hashing.unique_rows` for a few rows: (first-occurrence rows [M], inverse [N]), int64."""
    rows = coords.tolist()
    if rows:
        _check_box(*_bounds(rows))
    first: dict[tuple[int, ...], int] = {}
    unique: list[int] = []
    inverse: list[int] = []
    for i, row in enumerate(rows):
        key = tuple(row)
        rank = first.get(key)
        if rank is None:
            rank = first[key] = len(unique)
            unique.append(i)
        inverse.append(rank)
    inv = _tensor(inverse, np.int64, coords)
    if len(unique) == len(rows):
        return inv, inv.clone()  # every row unique: both are 0..N-1
    return _tensor(unique, np.int64, coords), inv


def small_kernel_map(
    in_coords: torch.Tensor,
    out_coords: torch.Tensor,
    offsets: torch.Tensor,
    identity: int,
    mirror: list[int] | None,
) -> KernelMap:
    """`kernel_map.build_kernel_map` for a few queries, both sets non-empty, at least one offset.

    Arguments as there, with the offsets' symmetry (`identity`, `mirror`) already found.
    """
    in_rows, out_rows = in_coords.tolist(), out_coords.tolist()
    deltas = [[0, *d] for d in offsets.tolist()]
    # the box the vectorised route hashes: inputs and every queried neighbour
    (in_lo, in_hi), (out_lo, out_hi) = _bounds(in_rows), _bounds(out_rows)
    d_lo, d_hi = _bounds(deltas)
    lo = [min(a, b + c) for a, b, c in zip(in_lo, out_lo, d_lo, strict=True)]
    hi = [max(a, b + c) for a, b, c in zip(in_hi, out_hi, d_hi, strict=True)]
    _check_box(lo, hi)
    # mixed-radix keys over that box (as `hashing.Box`): a neighbour's key is a row's key plus
    # its offset's, one integer addition per query instead of building a tuple
    mult, place = [], 1
    for v, h in zip(reversed(lo), reversed(hi), strict=True):
        mult.append(place)
        place *= h - v + 1
    mult.reverse()

    base = sum(map(mul, lo, mult))  # key(row) = row . mult - lo . mult
    table = {sum(map(mul, r, mult)) - base: i for i, r in enumerate(in_rows)}
    out_keys = [sum(map(mul, r, mult)) - base for r in out_rows]
    get = table.get
    ins_idx: list[int] = []
    outs_idx: list[int] = []
    counts: list[int] = []
    k_count = len(deltas)
    patch = [len(in_rows)] * (len(out_rows) * k_count)  # `KernelMap.patch_rows`, filled here
    for k, delta in enumerate(deltas):
        step = sum(map(mul, delta, mult))
        before = len(ins_idx)
        for o, q in enumerate(out_keys):
            i = get(q + step)
            if i is not None:
                ins_idx.append(i)
                outs_idx.append(o)
                patch[o * k_count + k] = i
        counts.append(len(ins_idx) - before)
    pairs = _tensor([ins_idx, outs_idx], np.int32, in_coords)  # one conversion, two row views
    kmap = KernelMap(
        pairs[0],
        pairs[1],
        counts,
        len(in_rows),
        len(out_rows),
        identity,
        mirror,
        in_unique=len(set(ins_idx)) == len(ins_idx),
        out_unique=len(set(outs_idx)) == len(outs_idx),
    )
    kmap._patch_rows = _tensor(patch, np.int64, in_coords)
    return kmap


def small_strided_rows(coords: torch.Tensor, tensor_stride: Sequence[int]) -> torch.Tensor:
    """Unique rows of `coords` [N, 1+D] (N >= 1) floored to `tensor_stride`, first occurrences in
    order: `hashing.floor_to_stride` then `hashing.unique_rows`, as a tensor of `coords`' dtype."""
    floored: dict[tuple[int, ...], None] = {}
    for row in coords.tolist():
        cell = [v // s * s for v, s in zip(row[1:], tensor_stride, strict=True)]
        floored[(row[0], *cell)] = None  # a dictionary keeps its first insertion order
    rows = list(floored)
    _check_box(*_bounds(rows))
    if coords.dtype == torch.int32:
        return _tensor(rows, np.int32, coords)
    return _tensor(rows, np.int64, coords).to(coords.dtype)
