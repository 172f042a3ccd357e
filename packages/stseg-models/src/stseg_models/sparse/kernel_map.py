"""Kernel maps: for every kernel offset k, the (input row, output row) pairs it connects.

Built fully vectorised: both coordinate sets are hashed into one linear key space (`hashing.Box`),
then every ``K x N_out`` neighbour key is looked up at once, through a dense key -> row table when
the bounding box is small enough (one gather per query) or by binary search over the sorted input
keys otherwise. Pairs are stored concatenated, grouped by offset (kernel order) and by output row
within each offset; group sizes live on the host so layers split them without device syncs.

For the scatter side of a convolution, `KernelMap.bags` regroups the pairs of a run of offsets by
output (or input) row — a CSR layout that `torch.nn.functional.embedding_bag` reduces in parallel,
far faster on CPU than `index_add_` — and caches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from stseg_models.sparse.hashing import make_box

# largest bounding box (cells) for the dense lookup table: 2**25 int32 entries = 128 MiB, freed
# right after the build; larger boxes fall back to sort + searchsorted
_DENSE_TABLE_MAX = 2**25


@dataclass
class Bags:
    """Pairs of offsets ``[first, last)`` reordered by one side: for `embedding_bag` (sum mode).

    order: int64 [P_g] positions into the group's offset-major pair list, sorted by row;
    offsets: int64 [num_rows] start of each row's bag in `order`.
    """

    order: torch.Tensor
    offsets: torch.Tensor


@dataclass
class KernelMap:
    """Neighbour pairs of one (input set, output set, kernel) combination.

    in_idx, out_idx: int64 [P] concatenated pairs, offset-major; counts[k] pairs belong to offset k.
    identity: offset index whose pairs are exactly ``i -> i`` for every row (same set, zero offset),
    or -1; layers use it to skip a gather/scatter.
    """

    in_idx: torch.Tensor
    out_idx: torch.Tensor
    counts: list[int]
    num_in: int
    num_out: int
    identity: int = -1
    _split: list[tuple[torch.Tensor, torch.Tensor]] | None = field(default=None, repr=False)
    _bags: dict[tuple[int, int, str], Bags] = field(default_factory=dict, repr=False)

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

    def pairs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per-offset ``(in_idx_k, out_idx_k)`` views (empty tensors for offsets with no pair)."""
        if self._split is None:
            ins = torch.split(self.in_idx, self.counts)
            outs = torch.split(self.out_idx, self.counts)
            self._split = list(zip(ins, outs, strict=True))
        return self._split

    def bags(self, first: int, last: int, side: str) -> Bags:
        """CSR regrouping of the pairs of offsets ``[first, last)`` by 'out' or 'in' row (cached)."""
        key = (first, last, side)
        cached = self._bags.get(key)
        if cached is None:
            starts = self.starts
            lo = starts[first] if first < len(starts) else 0
            hi = lo + sum(self.counts[first:last])
            rows = (self.out_idx if side == "out" else self.in_idx)[lo:hi]
            n = self.num_out if side == "out" else self.num_in
            order = torch.sort(rows, stable=True).indices
            count = torch.bincount(rows, minlength=n)
            offsets = torch.cumsum(count, 0) - count
            cached = self._bags[key] = Bags(order, offsets)
        return cached

    def transposed(self) -> KernelMap:
        """The same pairs with inputs and outputs swapped (a transposed convolution's map)."""
        return KernelMap(self.out_idx, self.in_idx, self.counts, self.num_out, self.num_in, self.identity)


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
    offs = torch.cat([torch.zeros(k_count, 1, dtype=torch.int64, device=device), offsets.long().to(device)], dim=1)
    n_in, n_out = in_coords.shape[0], out_coords.shape[0]
    if n_in == 0 or n_out == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return KernelMap(empty, empty, [0] * k_count, n_in, n_out)
    inc, outc = in_coords.long(), out_coords.long()
    # box covering the input set and every queried neighbour, so in-range keys never alias
    lo = torch.minimum(inc.amin(0), outc.amin(0) + offs.amin(0))
    hi = torch.maximum(inc.amax(0), outc.amax(0) + offs.amax(0))
    box = make_box(lo, hi)
    query = box.keys(outc).unsqueeze(0) + box.delta(offs).unsqueeze(1)  # [K, N_out]
    if box.volume <= _DENSE_TABLE_MAX:
        table = torch.full((box.volume,), -1, dtype=torch.int32, device=device)
        table[box.keys(inc)] = torch.arange(n_in, dtype=torch.int32, device=device)
        found = table[query]
        del table
        match = found >= 0
        in_idx = found[match].long()
    else:
        in_keys, perm = torch.sort(box.keys(inc))
        pos = torch.searchsorted(in_keys, query).clamp_(max=n_in - 1)
        match = in_keys[pos] == query
        in_idx = perm[pos[match]]
    counts = [int(c) for c in match.sum(dim=1).tolist()]  # the one host sync, at build time only
    out_idx = match.nonzero()[:, 1]
    identity = -1
    if same_set:
        zero = (offsets == 0).all(dim=1).nonzero().flatten().tolist()
        identity = zero[0] if zero else -1
    return KernelMap(in_idx, out_idx, counts, n_in, n_out, identity)
