"""Kernel maps: for every kernel offset k, the (input row, output row) pairs it connects.

Built fully vectorised: both coordinate sets are hashed into one linear key space (`hashing.Box`),
then every ``K x N_out`` neighbour key is looked up at once, through a dense key -> row table when
the bounding box is small enough (one gather per query) or by binary search over the sorted input
keys otherwise. Pairs are stored concatenated, grouped by offset (kernel order) and by output row
within each offset; group sizes live on the host so layers split them without device syncs.

For the scatter side of a convolution, `KernelMap.plan` cuts the output rows into chunks and
regroups each chunk's pairs by output row — a CSR layout that `torch.nn.functional.embedding_bag`
reduces in parallel, far faster on CPU than `index_add_` — and caches it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from stseg_models.sparse.hashing import make_box

# largest bounding box (cells) for the dense lookup table: 2**25 int32 entries = 128 MiB, freed
# right after the build; larger boxes fall back to sort + searchsorted
_DENSE_TABLE_MAX = 2**25


@dataclass
class ScatterPlan:
    """Output rows cut into chunks, each with its pair slices and an `embedding_bag` layout.

    chunks[c] = (first_row, last_row); slices[c][k] = (lo, hi) into the offset-major pair lists;
    order[c] / offsets[c]: the chunk's buffer rows (offset-major) regrouped by output row, as
    `embedding_bag(order, buffer, offsets, mode="sum")` expects.
    """

    chunks: list[tuple[int, int]]
    slices: list[list[tuple[int, int]]]
    order: list[torch.Tensor]
    offsets: list[torch.Tensor]


@dataclass
class KernelMap:
    """Neighbour pairs of one (input set, output set, kernel) combination.

    in_idx, out_idx: int64 [P] concatenated pairs, offset-major, sorted by output row within each
    offset; counts[k] pairs belong to offset k. identity: offset index whose pairs are exactly
    ``i -> i`` for every row (same set, zero offset), or -1; layers use a dense matmul for it.
    """

    in_idx: torch.Tensor
    out_idx: torch.Tensor
    counts: list[int]
    num_in: int
    num_out: int
    identity: int = -1
    mirror: list[int] | None = None
    _split: list[tuple[torch.Tensor, torch.Tensor]] | None = field(default=None, repr=False)
    _plans: dict[int, ScatterPlan] = field(default_factory=dict, repr=False)
    _reversed: KernelMap | None = field(default=None, repr=False)

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

    def _offset_of_pair(self) -> torch.Tensor:
        counts = torch.tensor(self.counts, device=self.in_idx.device)
        return torch.repeat_interleave(torch.arange(len(self.counts), device=counts.device), counts)

    def reversed(self) -> KernelMap:
        """Inputs and outputs swapped, re-sorted by the new output row (cached both ways).

        This is the map of the transposed operation: a transposed convolution's forward, and the
        input-gradient pass of a convolution's backward.
        """
        if self._reversed is None:
            k_of = self._offset_of_pair()
            order = torch.argsort(
                k_of * max(self.num_in, 1) + self.in_idx
            )  # unique keys: offset, then row
            rev = KernelMap(
                self.out_idx[order],
                self.in_idx[order],
                self.counts,
                self.num_out,
                self.num_in,
                self.identity,
            )
            rev._reversed = self
            self._reversed = rev
        return self._reversed

    def plan(self, channels: int, budget: int) -> ScatterPlan:
        """Chunking so each chunk's pair buffer holds at most ~`budget` elements of `channels` columns."""
        active = sum(c for k, c in enumerate(self.counts) if k != self.identity)
        n_chunks = max(1, min(self.num_out, -(-active * channels // budget)))
        cached = self._plans.get(n_chunks)
        if cached is not None:
            return cached
        device = self.out_idx.device
        k_of = self._offset_of_pair()
        keep = k_of != self.identity
        per_row = torch.bincount(self.out_idx[keep], minlength=self.num_out)
        targets = torch.arange(1, n_chunks, device=device) * active // n_chunks
        bounds = torch.searchsorted(torch.cumsum(per_row, 0), targets, right=True)
        rows = [0, *[int(b) for b in bounds.tolist()], self.num_out]
        composite = (
            k_of * self.num_out + self.out_idx
        )  # ascending: offset-major, rows sorted within
        k_count = len(self.counts)
        grid = torch.arange(k_count, device=device).unsqueeze(1) * self.num_out + torch.tensor(
            rows, device=device
        )
        cuts = torch.searchsorted(composite, grid.flatten()).reshape(k_count, len(rows)).tolist()
        chunks, slices, orders, offsets = [], [], [], []
        for c in range(len(rows) - 1):
            first, last = rows[c], rows[c + 1]
            sl = [
                (cuts[k][c], cuts[k][c + 1]) if k != self.identity else (0, 0)
                for k in range(k_count)
            ]
            order, offs = _bag_layout([self.out_idx[lo:hi] - first for lo, hi in sl], last - first)
            chunks.append((first, last))
            slices.append(sl)
            orders.append(order)
            offsets.append(offs)
        plan = self._plans[n_chunks] = ScatterPlan(chunks, slices, orders, offsets)
        return plan

    def transposed(self) -> KernelMap:
        """Alias of `reversed` (MinkowskiEngine's name for the transposed map)."""
        return self.reversed()


def _bag_layout(
    rows_per_offset: list[torch.Tensor], num_rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Counting sort of offset-major pairs by row: (order [P], bag start per row [num_rows]).

    Within one offset every row appears at most once, so a pair's rank inside its row's bag is the
    number of earlier offsets that also reach that row: an exclusive cumulative sum over a
    [K, num_rows] presence table, O(K * rows + P) with no sort.
    """
    device = rows_per_offset[0].device if rows_per_offset else torch.device("cpu")
    sizes = [len(r) for r in rows_per_offset]
    rows = (
        torch.cat(rows_per_offset)
        if rows_per_offset
        else torch.zeros(0, dtype=torch.int64, device=device)
    )
    k_of = torch.repeat_interleave(
        torch.arange(len(sizes), device=device), torch.tensor(sizes, device=device)
    )
    presence = torch.zeros((len(sizes), num_rows), dtype=torch.int32, device=device)
    presence[k_of, rows] = 1
    before = torch.cumsum(presence, dim=0) - presence  # offsets earlier than k reaching the row
    count = presence.sum(dim=0)
    offsets = torch.cumsum(count, 0) - count
    order = torch.empty_like(rows)
    order[offsets[rows] + before[k_of, rows]] = torch.arange(rows.numel(), device=device)
    return order, offsets.long()


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
    offs = torch.cat(
        [torch.zeros(k_count, 1, dtype=torch.int64, device=device), offsets.long().to(device)],
        dim=1,
    )
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
    identity, mirror = -1, None
    if same_set:
        listed = [tuple(o) for o in offsets.tolist()]
        position = {o: k for k, o in enumerate(listed)}
        identity = position.get((0,) * offsets.shape[1], -1)
        if all(tuple(-v for v in o) in position for o in listed) and len(position) == len(listed):
            mirror = [position[tuple(-v for v in o)] for o in listed]
    return KernelMap(in_idx, out_idx, counts, n_in, n_out, identity, mirror)
