"""Kernel maps: for every kernel offset k, the (input row, output row) pairs it connects.

Built without per-point Python loops: both coordinate sets are hashed into one linear key space
(`hashing.Box`); neighbour keys are looked up through a dense key -> row table when the bounding
box is small enough (one gather per query) or by binary search over the sorted input keys
otherwise. On CPU a large map's lookup runs one offset at a time (working arrays stay in cache),
and for a same-set map with a symmetric kernel only half the offsets are looked up: offset -d's
pairs are offset d's read backwards. On other devices, and for CPU maps of at most
`ALL_AT_ONCE_QUERIES` queries, all ``K x N_out`` keys are looked up at once, with no per-offset host
sync. Pairs are stored concatenated as int32, grouped by offset (kernel order) and by output row
within each offset; group sizes live on the host so layers split them without syncs.

Two flags let layers skip work: `in_unique` / `out_unique` say every input / output row has at
most one pair (a stride-2, size-2 convolution: each fine row has exactly one coarse parent), so
that side needs no reduction, only a gather or a scatter. The reversed map of such a map is the same
two index tensors swapped, no copy and no sort. Scatter plans (`scatter_plan`) are built on demand
and cached per chunk count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from stseg_models.sparse.hashing import DENSE_TABLE_MAX, make_box
from stseg_models.sparse.scatter_plan import ScatterPlan, build_plan

# most (output row, offset) queries a CPU map answers with a dictionary (`small.small_kernel_map`);
# 16 points x 27 offsets is 432: below about a thousand, dispatching tensor operations costs more
SMALL_QUERIES = 1024
# most queries a CPU map answers with one [K, N_out] lookup of every offset at once, as on other
# devices: below this the ~5 tensor operations per offset of the per-offset loop dominate (a
# 1000-point 3x3x3 map took half the time at once); from ~4000 points the loop, cache-resident, wins
ALL_AT_ONCE_QUERIES = 2**16


@dataclass
class KernelMap:
    """Neighbour pairs of one (input set, output set, kernel) combination.

    in_idx, out_idx: int32 [P] concatenated pairs, offset-major; counts[k] pairs belong to offset k.
    Within one offset a row appears at most once on either side. Pairs are sorted by output row
    within each offset unless `out_sorted` is False (only ever with `out_unique`, where no scatter
    plan is needed). identity: offset index whose pairs are exactly ``i -> i`` for every row (same
    set, zero offset), or -1; layers use a dense matmul for it. mirror[k]: index of offset -k when
    the map is a same-set map with a symmetric kernel (its transpose is itself with offsets
    permuted), else None.
    """

    in_idx: torch.Tensor
    out_idx: torch.Tensor
    counts: list[int]
    num_in: int
    num_out: int
    identity: int = -1
    mirror: list[int] | None = None
    in_unique: bool = False
    out_unique: bool = False
    out_sorted: bool = True
    _plans: dict[int, ScatterPlan] = field(default_factory=dict, repr=False)
    _reversed: KernelMap | None = field(default=None, repr=False)
    _slots: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    _sources: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)
    _patch_rows: torch.Tensor | None = field(default=None, repr=False)
    _padded: tuple[list[int], int, torch.Tensor, torch.Tensor] | None = field(
        default=None, repr=False
    )

    @property
    def kernel_volume(self) -> int:
        return len(self.counts)

    @property
    def starts(self) -> list[int]:
        """Start of each offset's pairs in the concatenated lists."""
        out, total = [], 0
        for c in self.counts:
            out.append(total)
            total += c
        return out

    def slices(self) -> list[tuple[int, int]]:
        """(lo, hi) of each offset's pairs in the concatenated lists."""
        return [(s, s + c) for s, c in zip(self.starts, self.counts, strict=True)]

    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-offset ``(in_idx_k, out_idx_k)`` int64 tensors (empty for offsets with no pair)."""
        return [(self.in_idx[lo:hi].long(), self.out_idx[lo:hi].long()) for lo, hi in self.slices()]

    def offset_ids(self) -> torch.Tensor:
        """int64 [P]: the offset index of every pair (the pairs are offset-major)."""
        device = self.in_idx.device
        return torch.repeat_interleave(
            torch.arange(self.kernel_volume, device=device),
            torch.tensor(self.counts, device=device),
        )

    def slots(self, side: str) -> torch.Tensor:
        """int32 [N_side]: the pair of each row of one side ("in" or "out"), `P` when it has none.

        Only for a side whose rows are unique; cached. It turns an offset-major pair buffer (plus
        one zero row at `P`) into row order with a single gather.
        """
        slots = self._slots.get(side)
        if slots is None:
            idx, n = (self.in_idx, self.num_in) if side == "in" else (self.out_idx, self.num_out)
            pairs = idx.numel()
            slots = torch.full((n,), pairs, dtype=torch.int32, device=idx.device)
            slots[idx] = torch.arange(pairs, dtype=torch.int32, device=idx.device)
            self._slots[side] = slots
        return slots

    def fill(self) -> float:
        """Fraction of the ``N_out x K`` (output row, offset) slots that hold a pair."""
        return sum(self.counts) / max(1, self.num_out * self.kernel_volume)

    def sources(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(input row int32 [N_out * K], present bool [N_out * K]) of slot ``o * K + k``; cached.

        Only for maps whose input rows are unique: row o's slots, side by side, are one row of the
        dense ``[N_out, K * C]`` patch matrix whose product with the flattened kernel is the
        convolution (a stride-s, size-s convolution; the input gradient of its transpose). Empty
        slots point at row 0 and are masked.
        """
        if self._sources is None:
            k_count, device = self.kernel_volume, self.in_idx.device
            slot = self.out_idx.long() * k_count + self.offset_ids()
            rows = torch.zeros(self.num_out * k_count, dtype=torch.int32, device=device)
            rows[slot] = self.in_idx
            present = torch.zeros(self.num_out * k_count, dtype=torch.bool, device=device)
            present[slot] = True
            self._sources = (rows, present)
        return self._sources

    def patch_rows(self) -> torch.Tensor:
        """int64 [N_out * K]: the input row of slot ``o * K + k``, `num_in` when empty; cached.

        For small maps (`conv_function.SMALL_PATCH_ELEMENTS`), built with Python lists: every slot
        holds at most one pair (a row appears once per offset on either side), so gathering
        input rows plus one zero row at `num_in` gives the whole ``[N_out, K * C]`` patch matrix.
        """
        if self._patch_rows is None:
            k_count = self.kernel_volume
            rows = [self.num_in] * (self.num_out * k_count)
            ins, outs = self.in_idx.tolist(), self.out_idx.tolist()
            for k, (lo, hi) in enumerate(self.slices()):
                for i, o in zip(ins[lo:hi], outs[lo:hi], strict=True):
                    rows[o * k_count + k] = i
            as_array = np.array(rows, dtype=np.int64)  # numpy: far faster than torch.tensor(list)
            self._patch_rows = torch.from_numpy(as_array).to(self.in_idx.device)
        return self._patch_rows

    def padded_offsets(self) -> tuple[list[int], int]:
        """(offsets other than the identity, most pairs any of them has): `padded`'s layout."""
        ks = [k for k in range(self.kernel_volume) if k != self.identity]
        return ks, max((self.counts[k] for k in ks), default=0)

    def padded(self) -> tuple[list[int], int, torch.Tensor, torch.Tensor]:
        """(offsets ks, width w, in rows int64 [len(ks) * w], out rows int64 [len(ks) * w]); cached.

        The pairs of offset ks[j] fill slots ``j * w ..`` in order, the rest of each group is padding
        pointing at row `num_in` / `num_out` (one past the last): a zero row to gather, a spare row
        to scatter into. The identity offset, if any, is left out (layers multiply it densely).
        """
        if self._padded is None:
            ks, width = self.padded_offsets()
            device = self.in_idx.device
            counts = torch.tensor(self.counts, device=device)
            offset = torch.repeat_interleave(
                torch.arange(self.kernel_volume, device=device), counts
            )
            start = torch.cumsum(counts, 0) - counts
            rank = torch.arange(self.kernel_volume, device=device)  # group of each offset
            if self.identity >= 0:
                rank = rank - (rank > self.identity).long()
            slot = (
                rank[offset] * width + torch.arange(offset.numel(), device=device) - start[offset]
            )
            in_idx, out_idx = self.in_idx.long(), self.out_idx.long()
            if self.identity >= 0:
                keep = offset != self.identity
                slot, in_idx, out_idx = slot[keep], in_idx[keep], out_idx[keep]
            rows_in = torch.full((len(ks) * width,), self.num_in, dtype=torch.int64, device=device)
            rows_out = torch.full_like(rows_in, self.num_out)
            rows_in[slot], rows_out[slot] = in_idx, out_idx
            self._padded = (ks, width, rows_in, rows_out)
        return self._padded

    def nbytes(self) -> int:
        """Bytes held by this map's index tensors and cached plans (not its reverse)."""
        own = self.in_idx.numel() * self.in_idx.element_size() * 2
        own += sum(t.numel() * t.element_size() for t in self._slots.values())
        if self._sources is not None:
            own += sum(t.numel() * t.element_size() for t in self._sources)
        if self._padded is not None:
            own += sum(t.numel() * t.element_size() for t in self._padded[2:])
        return own + sum(p.nbytes() for p in self._plans.values())

    def reversed(self) -> KernelMap:
        """Inputs and outputs swapped (cached both ways): the map of the transposed operation.

        Used by a transposed convolution's forward and by the input-gradient pass of a convolution
        whose map has no cheaper route (see `conv_function`).
        """
        if self._reversed is None:
            # rows swapped: uniqueness swaps too; only the unique-output case skips the sort
            counts, sorted_rows = self.counts, True
            if self.in_unique:
                # the new outputs are unique: no plan will ever be needed, so no sort either
                new_in, new_out, sorted_rows = self.out_idx, self.in_idx, False
            elif self.mirror is not None:
                # offset k of the transpose is offset -k of this map, already sorted by row
                sl = self.slices()
                parts = [sl[m] for m in self.mirror]
                new_in = torch.cat([self.in_idx[lo:hi] for lo, hi in parts])
                new_out = torch.cat([self.out_idx[lo:hi] for lo, hi in parts])
                counts = [self.counts[m] for m in self.mirror]
            else:
                key = self.offset_ids() * max(self.num_in, 1) + self.in_idx  # unique keys
                order = torch.argsort(key)
                del key
                new_in, new_out = self.out_idx[order], self.in_idx[order]
            rev = KernelMap(
                new_in,
                new_out,
                counts,
                self.num_out,
                self.num_in,
                self.identity,
                self.mirror,
                in_unique=self.out_unique,
                out_unique=self.in_unique,
                out_sorted=sorted_rows,
            )
            rev._reversed = self
            self._reversed = rev
        return self._reversed

    def transposed(self) -> KernelMap:
        """Alias of `reversed` (MinkowskiEngine's name for the transposed map)."""
        return self.reversed()

    def plan(self, pairs_per_chunk: int) -> ScatterPlan:
        """Scatter plan with chunks of about `pairs_per_chunk` pairs (cached per chunk count)."""
        if not self.out_sorted:
            raise RuntimeError("a scatter plan needs pairs sorted by output row")
        active = sum(c for k, c in enumerate(self.counts) if k != self.identity)
        n_chunks = max(1, min(self.num_out, -(-active // max(pairs_per_chunk, 1))))
        plan = self._plans.get(n_chunks)
        if plan is None:
            plan = build_plan(self.out_idx, self.slices(), self.num_out, self.identity, n_chunks)
            self._plans[n_chunks] = plan
        return plan


def _on_cpu(device: torch.device) -> bool:
    """CPU builds loop over offsets (cache-friendly); other devices do one vectorised lookup."""
    return device.type == "cpu"


def _offset_symmetry(offsets: torch.Tensor) -> tuple[int, list[int] | None]:
    """(index of the zero offset or -1, mirror[k] = index of -offsets[k] or None if not symmetric)."""
    identity, mirror = _listed_symmetry(tuple(map(tuple, offsets.tolist())))
    return identity, None if mirror is None else list(mirror)  # a list of the map's own


@lru_cache(maxsize=256)
def _listed_symmetry(listed: tuple[tuple[int, ...], ...]) -> tuple[int, tuple[int, ...] | None]:
    """`_offset_symmetry` of listed offsets; cached: a network asks for a few kernels again and
    again, and for a tiny map this took as long as its lookups."""
    position = {o: k for k, o in enumerate(listed)}
    identity = position.get((0,) * len(listed[0]), -1) if listed else -1
    if len(position) == len(listed) and all(tuple(-v for v in o) in position for o in listed):
        return identity, tuple(position[tuple(-v for v in o)] for o in listed)
    return identity, None


def _pairs_by_offset(
    lookup: Callable[[int], torch.Tensor],
    deltas: list[int],
    identity: int,
    mirror: list[int] | None,
    swap_is_sorted: bool,
    n_out: int,
    device: torch.device,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per offset, (in rows, out rows) int32 where ``lookup(delta)`` [N_out] finds an input row (or -1).

    With a mirror (same set, symmetric kernel) only half the offsets are looked up: the pairs of
    offset -d are those of d read backwards, and when the rows are in key order (`swap_is_sorted`)
    they are already sorted by their new output row.
    """
    pairs: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * len(deltas)
    if identity >= 0:  # zero offset on the same set: every row to itself
        rows = torch.arange(n_out, dtype=torch.int32, device=device)
        pairs[identity] = (rows, rows)
    for k, delta in enumerate(deltas):
        if pairs[k] is not None:
            continue
        found = lookup(delta)
        hit = (found >= 0).nonzero().squeeze(1)
        i_k, o_k = found[hit], hit.int()
        pairs[k] = (i_k, o_k)
        m = k if mirror is None else mirror[k]
        if m != k and pairs[m] is None:
            if swap_is_sorted:
                pairs[m] = (o_k, i_k)
            else:
                back = torch.full((n_out,), -1, dtype=torch.int32, device=device)
                back[i_k] = o_k
                hit = (back >= 0).nonzero().squeeze(1)
                pairs[m] = (back[hit], hit.int())
    return [p for p in pairs if p is not None]


def build_kernel_map(
    in_coords: torch.Tensor,
    out_coords: torch.Tensor,
    offsets: torch.Tensor,
    same_set: bool = False,
) -> KernelMap:
    """Pairs (i, o, k) with ``in_coords[i] == out_coords[o] + offsets[k]`` (batch column equal).

    in_coords [N_in, 1+D], out_coords [N_out, 1+D] integer; offsets [K, D] integer, already scaled
    by tensor stride x dilation. `same_set` says in_coords and out_coords are the same set, which
    makes the zero offset an identity map.
    """
    device = in_coords.device
    k_count = offsets.shape[0]
    n_in, n_out = in_coords.shape[0], out_coords.shape[0]
    if n_in and n_out and k_count and n_out * k_count <= SMALL_QUERIES and _on_cpu(device):
        # a few queries: a dictionary beats ~50 tensor operations' dispatch (`small`)
        from stseg_models.sparse.small import small_kernel_map

        identity, mirror = _offset_symmetry(offsets) if same_set else (-1, None)
        return small_kernel_map(in_coords, out_coords, offsets, identity, mirror)
    offs = torch.cat(
        [torch.zeros(k_count, 1, dtype=torch.int64, device=device), offsets.long().to(device)],
        dim=1,
    )
    if n_in == 0 or n_out == 0:
        empty = torch.zeros(0, dtype=torch.int32, device=device)
        return KernelMap(empty, empty, [0] * k_count, n_in, n_out, in_unique=True, out_unique=True)
    identity, mirror = _offset_symmetry(offsets) if same_set else (-1, None)
    inc, outc = in_coords.long(), out_coords.long()
    # box covering the input set and every queried neighbour, so in-range keys never alias
    lo = torch.minimum(inc.amin(0), outc.amin(0) + offs.amin(0))
    hi = torch.maximum(inc.amax(0), outc.amax(0) + offs.amax(0))
    box = make_box(lo, hi)
    out_keys = box.keys(outc)
    if _on_cpu(device) and n_out * k_count > ALL_AT_ONCE_QUERIES:
        # one offset at a time: [N_out] working arrays stay in cache, no [K, N_out] temporaries
        if box.volume <= DENSE_TABLE_MAX:
            table = torch.full((box.volume,), -1, dtype=torch.int32, device=device)
            table[box.keys(inc)] = torch.arange(n_in, dtype=torch.int32, device=device)
            keys32 = out_keys.int()

            def lookup(delta: int) -> torch.Tensor:
                return table.index_select(0, keys32 + delta)
        else:
            in_keys, perm = torch.sort(box.keys(inc))
            perm = perm.int()

            def lookup(delta: int) -> torch.Tensor:
                query = out_keys + delta
                pos = torch.searchsorted(in_keys, query).clamp_(max=n_in - 1)
                return torch.where(in_keys[pos] == query, perm[pos], -1)

        swap_sorted = mirror is not None and bool((out_keys[1:] > out_keys[:-1]).all())
        pairs = _pairs_by_offset(
            lookup, box.delta(offs).tolist(), identity, mirror, swap_sorted, n_out, device
        )
        in_idx = torch.cat([i for i, _ in pairs])
        out_idx = torch.cat([o for _, o in pairs])
        counts_t = torch.tensor([len(i) for i, _ in pairs], device=device)
    else:
        # one vectorised lookup of all K x N_out neighbours, no per-offset host sync (same pairs in
        # the same order as the loop: per offset, output rows ascending)
        query = out_keys.unsqueeze(0) + box.delta(offs).unsqueeze(1)  # [K, N_out]
        if box.volume <= DENSE_TABLE_MAX:
            table = torch.full((box.volume,), -1, dtype=torch.int32, device=device)
            table[box.keys(inc)] = torch.arange(n_in, dtype=torch.int32, device=device)
            found = table[query]
        else:
            in_keys, perm = torch.sort(box.keys(inc))
            pos = torch.searchsorted(in_keys, query).clamp_(max=n_in - 1)
            found = torch.where(in_keys[pos] == query, perm[pos].int(), -1)
        del query
        match = found >= 0
        in_idx = found[match]
        out_idx = torch.arange(n_out, dtype=torch.int32, device=device).expand(k_count, -1)[match]
        counts_t = match.sum(dim=1)
    p = in_idx.numel()
    stats = [counts_t]
    # a side can only be unique if it has at least as many rows as there are pairs
    for idx, n in ((in_idx, n_in), (out_idx, n_out)):
        multi = torch.bincount(idx, minlength=n).amax().reshape(1) if 0 < p <= n else None
        stats.append(
            multi if multi is not None else torch.tensor([1 if p == 0 else 2], device=device)
        )
    flat = torch.cat(stats).tolist()  # the one host sync of the build
    counts, in_multi, out_multi = [int(c) for c in flat[:k_count]], flat[-2], flat[-1]
    return KernelMap(
        in_idx,
        out_idx,
        counts,
        n_in,
        n_out,
        identity,
        mirror,
        in_unique=in_multi <= 1,
        out_unique=out_multi <= 1,
    )
