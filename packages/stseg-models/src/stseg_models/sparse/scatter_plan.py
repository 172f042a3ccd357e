"""Scatter plans: how a convolution sums its per-pair products into output rows, chunk by chunk.

A plan cuts the output rows of a kernel map into chunks of about `pairs_per_chunk` pairs and, for
each chunk, regroups its pairs (laid out offset-major in a pair buffer) by output row: a CSR layout
that `torch.nn.functional.embedding_bag(order, buffer, offsets, mode="sum")` reduces in parallel,
far faster on CPU than `index_add_`. Indices are int32 (half the memory of int64); a plan depends
only on the map and the chunk size (a power of two set by the channel count, `conv_function`), so
layers of similar width on one map, and a same-set map's backward, share it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ScatterPlan:
    """Output rows cut into chunks, each with its pair slices and an `embedding_bag` layout.

    chunks[c] = (first_row, last_row); slices[c][k] = (lo, hi) into the offset-major pair lists
    (empty for the identity offset, which layers handle with a dense matmul); order[c] / offsets[c]
    (int32): the chunk's buffer rows (offset-major) regrouped by output row.
    """

    chunks: list[tuple[int, int]]
    slices: list[list[tuple[int, int]]]
    order: list[torch.Tensor]
    offsets: list[torch.Tensor]

    def nbytes(self) -> int:
        """Bytes held by the layout tensors."""
        return sum(t.numel() * t.element_size() for t in (*self.order, *self.offsets))


def build_plan(
    out_idx: torch.Tensor,
    spans: list[tuple[int, int]],
    num_out: int,
    identity: int,
    n_chunks: int,
) -> ScatterPlan:
    """Plan for pairs whose output rows `out_idx` [P] are offset-major and sorted within each offset.

    spans[k] = (lo, hi): offset k's pairs (`KernelMap.slices`); the `identity` offset (or -1) is
    left out of every chunk. Built once per map and chunk count, but for every new batch of
    scenes: it stays a few passes over the pairs (no P-sized int64 temporaries, no per-row tables).
    """
    device = out_idx.device
    k_count = len(spans)
    counts = [hi - lo for lo, hi in spans]
    rows = [0, num_out]
    if n_chunks > 1:
        per_row = torch.bincount(out_idx, minlength=num_out)
        if identity >= 0:
            per_row -= 1  # the identity offset holds exactly one pair per row
        active = sum(counts) - (counts[identity] if identity >= 0 else 0)
        targets = torch.arange(1, n_chunks, device=device) * active // n_chunks
        bounds = torch.searchsorted(torch.cumsum(per_row, 0), targets, right=True)
        rows = [0, *[int(b) for b in bounds.tolist()], num_out]
    if len(rows) == 2:
        cuts = [[lo, hi] for lo, hi in spans]
    else:
        # rows are sorted within each offset: each chunk's pairs are one run per offset
        edges = torch.tensor(rows, dtype=out_idx.dtype, device=device)
        found = [torch.searchsorted(out_idx[lo:hi], edges) + lo for lo, hi in spans]
        cuts = torch.stack(found).tolist()
    chunks, slices, orders, offsets = [], [], [], []
    for c in range(len(rows) - 1):
        first, last = rows[c], rows[c + 1]
        sl = [(cuts[k][c], cuts[k][c + 1]) if k != identity else (0, 0) for k in range(k_count)]
        order, offs = bag_layout([out_idx[lo:hi] for lo, hi in sl], first, last - first)
        chunks.append((first, last))
        slices.append(sl)
        orders.append(order)
        offsets.append(offs)
    return ScatterPlan(chunks, slices, orders, offsets)


def bag_layout(
    rows_per_offset: list[torch.Tensor], first: int, num_rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Offset-major pairs regrouped by row: (order [P], bag start per row [num_rows]), int32.

    Row ids are ``rows_per_offset[k] - first``. A stable sort keeps each row's pairs in offset
    order (the order of the concatenated lists).
    """
    device = rows_per_offset[0].device if rows_per_offset else torch.device("cpu")
    if sum(len(r) for r in rows_per_offset) == 0:
        empty = torch.zeros(0, dtype=torch.int32, device=device)
        return empty, torch.zeros(num_rows, dtype=torch.int32, device=device)
    rows = torch.cat(rows_per_offset)
    if first:
        rows = rows - first
    order = torch.sort(rows, stable=True).indices.to(torch.int32)
    count = torch.bincount(rows, minlength=num_rows)
    offsets = (torch.cumsum(count, 0) - count).to(torch.int32)
    return order, offsets
