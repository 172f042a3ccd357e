"""Sparse convolution as a custom autograd function over a cached kernel map.

A pass computes ``dst[s] (+)= src[g] @ W_k`` over every pair (g, s) of every offset k. Four kinds:

* direct, when every destination row has at most one pair (`KernelMap.out_unique` going forward,
  `in_unique` going backward): per offset, gather and multiply into an offset-major buffer, then
  one gather puts the rows in order. A stride-2, size-2 convolution's backward and a transposed
  convolution's forward are like this: no reduction, no scatter plan, no reversed map.
* patch, when every *source* row has at most one pair (a stride-2, size-2 convolution's forward,
  the input gradient of its transpose) and most (row, offset) slots are filled: gather each
  destination row's K source rows side by side (`KernelMap.sources`) and multiply by the
  flattened kernel, one GEMM per piece of rows with the reduction inside it.
* batched, on CPU, for a map too large for the small route (`SMALL_PATCH_ELEMENTS`) whose pairs,
  padded to the largest offset's count (`KernelMap.padded`), are few (`BATCHED_SCALE`): one
  gather, one `bmm` over the offsets and one `index_add_` per pass; multiplying a thousand-point
  map is cheap, its ~100 per-offset operations were the cost.
* reduce, otherwise: destination rows are cut into chunks (`KernelMap.plan`); per chunk and offset,
  gather and multiply into a pair buffer, then sum the buffer into the chunk's rows with
  `embedding_bag` (parallel, several times faster on CPU than `index_add_`).

On CPU every temporary is small and reused: rows are gathered `GATHER_ELEMENTS` at a time into one
buffer (it stays in cache for the GEMM that reads it) and a reduce chunk's pair buffer holds at most
`CPU_PAIR_ELEMENTS` values. Large temporaries cost more than their arithmetic there: PyTorch's CPU
allocator does not cache, glibc maps each block over its threshold (at most 32 MiB) afresh, and
every page faults on first touch. With 128 MiB chunk buffers and one fresh tensor per gather, a
3x3x3 convolution 128->96 over 218k voxels took 0.78 s; with these budgets 0.36 s (32->32: 0.18 s
-> 0.06 s). Devices with a caching allocator use large buffers (fewer launches).

The zero offset of a same-set map is one dense matmul. Backward runs the transposed pass for the
input gradient: directly when input rows are unique, on the forward map itself with mirrored
weights (``W[-k]^T``) when the map is a same-set map with a symmetric kernel (the transpose of such
a map is the map itself, offsets permuted: no reversed copy, the forward's plan is reused), as a
patch pass when the reversed map allows it, and on the reversed map otherwise. The weight gradient
comes from the same gathers; nothing gathered is saved between forward and backward.

On CUDA, with Triton installed (`stseg_models.sparse.triton.use_triton`; ``STSEG_TRITON=0`` turns
it off), both passes run as fused gather-GEMM-scatter kernels instead, one launch per pass; the
torch-ops passes above stay the fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F

from stseg_models.sparse.gemm_rows import padded_rows, pads_rows
from stseg_models.sparse.kernel_map import KernelMap
from stseg_models.sparse.triton import use_triton

CPU_PAIR_ELEMENTS = 2**22  # pair buffer of a reduce chunk on CPU: 16 MiB of float32
DEVICE_PAIR_ELEMENTS = 2**25  # elsewhere: 128 MiB
GATHER_ELEMENTS = 2**20  # values gathered at once on CPU: 4 MiB, cache-resident for its GEMM
DIRECT_BUFFER_ELEMENTS = 2**25  # a direct pass's offset-major buffer (output-sized) up to this
PAIRS_PER_CHUNK = 2**20  # most pairs per reduce chunk, halved while over the pair budget
PATCH_MIN_FILL = 0.25  # a patch pass multiplies empty slots too: only worth it when few are empty
# a CPU map whose whole patch matrix [N_out, K * C_in] has at most this many values runs as one
# gather and one GEMM each way (`_small_forward`): for tiny inputs each tensor operation's dispatch,
# not arithmetic, is the cost (a 16-point 3x3 convolution: ~60 operations per pass before)
SMALL_PATCH_ELEMENTS = 2**16
# a CPU map too large for that but whose padded pair layout (`KernelMap.padded`) holds at most
# BATCHED_SCALE x SMALL_PATCH_ELEMENTS values per side (2**18) runs batched (`_batched_forward`): one
# gather, one `bmm` and one `index_add_` per pass instead of ~4 operations per offset (a 1000-point
# 3x3x3 convolution 16->16, forward and backward: 3.5 ms -> 1.6 ms); past ~10k points the per-offset
# routes are as fast and use less memory. SMALL_PATCH_ELEMENTS = 0 turns both small-map routes off.
BATCHED_SCALE = 4
BATCHED_MAX_PADDING = 1.5  # padded slots per pair at most: padding is multiplied like pairs


def _on_cpu(tensor: torch.Tensor) -> bool:
    return tensor.device.type == "cpu"


def _accumulate(total: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
    """total += a @ b; a float32 `total` of half-precision products gets each product converted.

    Weight gradients are [C_in, C_out]: converting one is free, and summing the pieces and chunks
    of a pass in float32 keeps a half-precision (autocast) backward from rounding at every step.
    """
    if total.dtype == a.dtype:
        total.addmm_(a, b)
    else:
        total += torch.mm(a, b).to(total.dtype)


def _pairs_per_chunk(channels: int, budget: int) -> int:
    """Chunk size for `channels` buffer columns: PAIRS_PER_CHUNK, halved until under `budget`."""
    n = PAIRS_PER_CHUNK
    while n > 1 and n * channels > budget:
        n //= 2
    return n


class _Gather:
    """Gathers rows of `src` into one reused buffer of at most `rows` rows (CPU) or fresh tensors.

    In half precision on CPU (`pads_rows`) the buffer has `padded_rows(rows)` rows and a gather of
    n rows returns `padded_rows(n)` of them (see `gemm_rows`): the rows past n hold what an earlier
    gather left (finite: rows of `src`, or zeros) or, with `zero_pad`, zeros.
    """

    def __init__(self, src: torch.Tensor, rows: int, pad: bool | None = None) -> None:
        self.src = src
        self.pad = pads_rows(src) if pad is None else pad
        self.buffer = None
        if _on_cpu(src):
            shape = (padded_rows(rows) if self.pad else rows, src.shape[1])
            self.buffer = src.new_zeros(shape) if self.pad else src.new_empty(shape)

    def __call__(self, idx: torch.Tensor, zero_pad: bool = False) -> torch.Tensor:
        if self.buffer is None:
            return self.src.index_select(0, idx)
        n = idx.numel()
        torch.index_select(self.src, 0, idx, out=self.buffer[:n])
        if not self.pad:
            return self.buffer[:n]
        m = padded_rows(n)
        if zero_pad and m > n:
            self.buffer[n:m].zero_()
        return self.buffer[:m]


def _piece_rows(tensor: torch.Tensor, width: int) -> int:
    """Rows gathered at once: `GATHER_ELEMENTS` values on CPU, unbounded elsewhere."""
    if not _on_cpu(tensor):
        return 2**62
    return max(1, GATHER_ELEMENTS * _bytes_scale(tensor) // max(width, 1))


def _bytes_scale(tensor: torch.Tensor) -> int:
    """How many times more values than float32 fit a CPU budget in `tensor`'s dtype (2 for
    bf16 / fp16): the budgets are cache and allocator sizes in bytes, set in float32 values."""
    return max(1, 4 // tensor.element_size())


def _gatherers(
    src: torch.Tensor, other: torch.Tensor | None, grad_weight: torch.Tensor | None
) -> tuple[int, _Gather, _Gather | None]:
    """(rows per piece, gatherer of `src`, gatherer of `other` when a weight gradient is asked)."""
    piece = _piece_rows(src, max(src.shape[1], other.shape[1] if other is not None else 0))
    other_gather = _Gather(other, piece) if grad_weight is not None and other is not None else None
    return piece, _Gather(src, piece), other_gather


def _pieces(lo: int, hi: int, rows: int) -> list[tuple[int, int]]:
    return [(a, min(hi, a + rows)) for a in range(lo, hi, rows)]


def _reduce_pass(
    src: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    need_out: bool,
    wsel: Sequence[int],
    transpose: bool,
    identity: torch.Tensor | None = None,
    grad_weight: torch.Tensor | None = None,
    other: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """out[o] = sum over pairs (i, o) of offset j of src[i] @ W[wsel[j]] (transposed if asked).

    `identity` [C_src, C_dst]: the same-set zero offset's matrix, applied densely (out[o] +=
    src[o] @ identity). With grad_weight/other given, also grad_weight[wsel[j]] += other[o]^T @
    src[i] (the weight gradient, from the same gathers). Returns out [N_out, C_dst] if `need_out`.
    """
    if not need_out and grad_weight is None:
        return None
    channels = weight.shape[1] if transpose else weight.shape[2]
    budget = CPU_PAIR_ELEMENTS * _bytes_scale(src) if _on_cpu(src) else DEVICE_PAIR_ELEMENTS
    plan = kmap.plan(_pairs_per_chunk(channels, budget))
    out = src.new_empty((kmap.num_out, channels)) if need_out else None
    piece, gather, gather_other = _gatherers(src, other, grad_weight)
    pad = pads_rows(src)
    buffer = identity_rows = None
    if out is not None:
        largest = max((sum(hi - lo for lo, hi in sl) for sl in plan.slices), default=0)
        # padded GEMMs write up to padded_rows(piece) rows past the last pair of a chunk
        buffer = src.new_empty((largest + (padded_rows(piece) if pad else 0), channels))
        if pad and identity is not None:
            widest = max((last - first for first, last in plan.chunks), default=0)
            identity_rows = src.new_empty((padded_rows(widest), channels))
    for (first, last), slices, order, offsets in zip(
        plan.chunks, plan.slices, plan.order, plan.offsets, strict=True
    ):
        pos = 0
        for j, (lo, hi) in enumerate(slices):
            k = wsel[j]
            w = weight[k].t() if transpose else weight[k]
            for a, b in _pieces(lo, hi, piece):
                # padded rows: zeros where they enter a weight-gradient sum, unread otherwise
                g = gather(kmap.in_idx[a:b], zero_pad=grad_weight is not None)
                if buffer is not None:
                    torch.mm(g, w, out=buffer[pos : pos + len(g)])
                if grad_weight is not None and gather_other is not None:
                    g_other = gather_other(kmap.out_idx[a:b], zero_pad=True)
                    _accumulate(grad_weight[k], g_other.t(), g)
                pos += b - a
        if out is None or buffer is None:
            continue
        rows = out[first:last]
        summed = F.embedding_bag(order, buffer[:pos], offsets, mode="sum") if pos else None
        if identity_rows is not None and identity is not None:
            dense = _identity_window(src, identity, first, last, identity_rows)
            if summed is not None:
                torch.add(dense, summed, out=rows)
            else:
                rows.copy_(dense)
            continue
        if identity is not None:
            torch.mm(src[first:last], identity, out=rows)
        else:
            rows.zero_()
        if summed is not None:
            rows.add_(summed)
    return out


def _whole_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b over every row of a layer (a 1x1 kernel): in half precision on CPU as GEMMs of
    `_piece_rows` rows and one zero-padded tail of `padded_rows` rows, so that a new point cloud
    (a new row count) needs no new oneDNN kernel (`gemm_rows`)."""
    if not pads_rows(a) or len(a) == 0:
        return a @ b
    out = a.new_empty((len(a), b.shape[1]))
    pieces, full = _whole_pieces(a, b)
    for lo, hi in pieces:
        torch.mm(a[lo:hi], b, out=out[lo:hi])
    if full < len(a):
        tail = _zero_padded(a[full:])
        out[full:] = (tail @ b)[: len(a) - full]
    return out


def _whole_tmm(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """a^T @ b summed over every row (the weight gradient of a 1x1 kernel or of the zero offset),
    in `dtype`; in half precision on CPU from pieces as `_whole_mm`, their sum in `dtype`."""
    if not pads_rows(a) or len(a) == 0:
        return _cast(a.t() @ b, dtype)
    total = a.new_zeros((a.shape[1], b.shape[1]), dtype=dtype)
    pieces, full = _whole_pieces(a, b)
    for lo, hi in pieces:
        _accumulate(total, a[lo:hi].t(), b[lo:hi])
    if full < len(a):  # zero rows in both operands add nothing to the sum
        _accumulate(total, _zero_padded(a[full:]).t(), _zero_padded(b[full:]))
    return total


def _whole_pieces(a: torch.Tensor, b: torch.Tensor) -> tuple[list[tuple[int, int]], int]:
    """The full `_piece_rows` pieces of a whole-layer GEMM over a's rows, and the row where the
    tail (fewer rows than a piece, padded by the caller) starts."""
    piece = _piece_rows(a, max(a.shape[1], b.shape[1]))
    full = len(a) - len(a) % piece
    return _pieces(0, full, piece), full


def _zero_padded(rows: torch.Tensor) -> torch.Tensor:
    """`rows` followed by zero rows, `padded_rows(len(rows))` in all."""
    padded = rows.new_zeros((padded_rows(len(rows)), rows.shape[1]))
    padded[: len(rows)] = rows
    return padded


def _identity_window(
    src: torch.Tensor, identity: torch.Tensor, first: int, last: int, scratch: torch.Tensor
) -> torch.Tensor:
    """src[first:last] @ identity, as one GEMM of `padded_rows(last - first)` rows of `src` (a
    window that starts at `first`, or ends at the last row where it would run past it) into
    `scratch`; returns the rows of first..last."""
    rows = last - first
    m = padded_rows(rows)
    if m > len(src):  # one chunk wider than the set's padded tail: zero rows below it
        torch.mm(_zero_padded(src[first:last]), identity, out=scratch[:m])
        return scratch[:rows]
    start = min(first, len(src) - m)
    torch.mm(src[start : start + m], identity, out=scratch[:m])
    return scratch[first - start : first - start + rows]


def _direct_pass(
    src: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    backward: bool,
    need_out: bool,
    grad_weight: torch.Tensor | None = None,
    other: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Pass over a map whose destination rows have at most one pair each; returns the result.

    Forward (``backward=False``): out[o] = src[i] @ W[k] over pairs (i, o, k), on `out_unique` maps.
    Backward: out[i] = src[o] @ W[k]^T, on `in_unique` maps, with optionally
    grad_weight[k] += other[i]^T @ src[o]. Rows without a pair are zero. The products go to an
    offset-major buffer that one gather (`KernelMap.slots`) puts in row order — several times
    faster than scattering each offset; past `DIRECT_BUFFER_ELEMENTS` each offset is scattered.
    """
    gather_idx, scatter = (kmap.out_idx, kmap.in_idx) if backward else (kmap.in_idx, kmap.out_idx)
    channels = weight.shape[1] if backward else weight.shape[2]
    rows = kmap.num_in if backward else kmap.num_out
    pairs = sum(kmap.counts)
    buffered = need_out and pairs * channels <= DIRECT_BUFFER_ELEMENTS
    out: torch.Tensor | None = None
    piece, gather, gather_other = _gatherers(src, other, grad_weight)
    if buffered:
        # padded GEMMs (`gemm_rows`) write up to padded_rows(piece) rows past the last pair
        spare = padded_rows(piece) if pads_rows(src) else 0
        buffer = src.new_empty((pairs + 1 + spare, channels))
    elif need_out:
        out = src.new_zeros((rows, channels))
    for k, (lo, hi) in enumerate(kmap.slices()):
        w = weight[k].t() if backward else weight[k]
        for a, b in _pieces(lo, hi, piece):
            g = gather(gather_idx[a:b], zero_pad=grad_weight is not None)
            if buffered:
                torch.mm(g, w, out=buffer[a : a + len(g)])
            elif out is not None:
                out.index_put_((scatter[a:b],), (g @ w)[: b - a])
            if grad_weight is not None and gather_other is not None:
                _accumulate(grad_weight[k], gather_other(scatter[a:b], zero_pad=True).t(), g)
    if buffered:
        buffer[pairs].zero_()  # the row read by destination rows without a pair
        out = buffer.index_select(0, kmap.slots("in" if backward else "out"))
    return out


def _patch_pass(
    src: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    transpose: bool,
    need_out: bool,
    grad_weight: torch.Tensor | None = None,
    other: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """Pass over a map whose source rows have at most one pair each (`in_unique`), by patches.

    out[o] = P[o] @ W_flat, where P[o] [K * C_src] holds src at output o's K slots side by side
    (zeros where a slot is empty) and W_flat stacks W[k] (or W[k]^T with `transpose`). With
    grad_weight/other [N_out, C_other], also grad_weight[k] += (other^T @ P)'s block k, transposed
    back to [C_other, C_src] (the weight gradient of a transposed convolution whose input gradient
    this is). The reduction over offsets happens inside one GEMM per piece of output rows.
    """
    if not need_out and grad_weight is None:
        return None
    k_count, c_src = kmap.kernel_volume, src.shape[1]
    flat = (weight.transpose(1, 2) if transpose else weight).reshape(k_count * c_src, -1)
    if sum(kmap.counts) == 0:
        return src.new_zeros((kmap.num_out, flat.shape[1])) if need_out else None
    rows_of, present = kmap.sources()
    acc = None
    if grad_weight is not None and other is not None:
        dtype = grad_weight.dtype  # float32 under autocast: sums of many pieces stay exact
        acc = src.new_zeros((other.shape[1], k_count * c_src), dtype=dtype)
    rows = max(1, _piece_rows(src, k_count * c_src))
    # Every piece has `rows` rows but the last; in half precision on CPU the last one's output
    # GEMM runs on padded_rows of them (`gemm_rows`), into spare rows of `out` past its end.
    pad = pads_rows(src)
    widest = padded_rows(min(rows, kmap.num_out)) if pad else min(rows, kmap.num_out)
    out = None
    if need_out:  # every row written
        out = src.new_empty((kmap.num_out + (widest if pad else 0), flat.shape[1]))
    gather = _Gather(src, widest * k_count, pad=False)
    for a, b in _pieces(0, kmap.num_out, rows):
        n = b - a
        m = padded_rows(n) if pad and n < rows else n
        patch = gather(rows_of[a * k_count : b * k_count])  # n * K rows (pad=False)
        patch.mul_(present[a * k_count : b * k_count].unsqueeze(1))
        if m > n and gather.buffer is not None:
            gather.buffer[n * k_count : m * k_count].zero_()
            patch = gather.buffer[: m * k_count]
        patch = patch.view(m, k_count * c_src)
        if out is not None:
            torch.mm(patch, flat, out=out[a : a + m])
        if acc is not None and other is not None:
            # the padded tail: zero rows of `other` against the zero rows of `patch`
            other_rows = other[a:b] if m == n else _zero_padded(other[a:b])
            _accumulate(acc, other_rows.t(), patch)
    if grad_weight is not None and acc is not None:
        grad_weight += acc.view(-1, k_count, c_src).permute(1, 0, 2)
    return out[: kmap.num_out] if out is not None else None


def _is_small(feats: torch.Tensor, kmap: KernelMap) -> bool:
    # Not in half precision on CPU: the small routes' GEMMs take the cloud's own row count, a new
    # oneDNN kernel for every cloud (`gemm_rows`); the general passes pad theirs.
    volume = kmap.num_out * kmap.kernel_volume * feats.shape[1]
    return volume <= SMALL_PATCH_ELEMENTS and _on_cpu(feats) and not pads_rows(feats)


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor.to(dtype)`` without the dispatch when it already has it (``to`` returns it then
    too): a few microseconds a call, a measurable part of a tiny convolution."""
    return tensor if tensor.dtype == dtype else tensor.to(dtype)


def _small_patch(feats: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """[N_out, K * C]: feats of each output row's K slots side by side, zeros where empty."""
    padded = torch.cat([feats, feats.new_zeros((1, feats.shape[1]))])
    return padded.index_select(0, kmap.patch_rows()).view(kmap.num_out, -1)


def _is_pointwise(kmap: KernelMap) -> bool:
    """A 1x1 map on one set (its identity is every pair): one dense matmul each way."""
    return kmap.identity >= 0 and kmap.out_unique and kmap.in_unique


def _small_forward(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """`conv_forward` of a small map: its patch matrix times the flattened kernel."""
    return torch.mm(_small_patch(feats, kmap), weight.reshape(-1, weight.shape[2]))


def _small_backward(
    grad_out: torch.Tensor,
    patch: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    need_feats: bool,
    need_weight: bool,
    weight_grad_dtype: torch.dtype | None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """`conv_backward` of a small map given its forward patch matrix (`_small_patch`): two GEMMs,
    the input gradient's slots summed into their rows."""
    grad_weight = None
    if need_weight:
        grad_weight = torch.mm(patch.t(), grad_out).view(weight.shape)
        grad_weight = _cast(grad_weight, weight_grad_dtype or weight.dtype)
    grad_feats = None
    if need_feats:
        slots = torch.mm(grad_out, weight.reshape(-1, weight.shape[2]).t())
        grad_feats = grad_out.new_zeros((kmap.num_in + 1, weight.shape[1]))
        grad_feats.index_add_(0, kmap.patch_rows(), slots.view(-1, weight.shape[1]))
        grad_feats = grad_feats[: kmap.num_in]
    return grad_feats, grad_weight


def _is_batched(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> bool:
    """A CPU map whose padded layout is small and mostly pairs (not small enough for patches)."""
    if not _on_cpu(feats) or pads_rows(feats):  # (half precision: see `_is_small`)
        return False
    ks, width = kmap.padded_offsets()
    slots = len(ks) * width
    pairs = sum(kmap.counts) - (kmap.counts[kmap.identity] if kmap.identity >= 0 else 0)
    channels = max(weight.shape[1], weight.shape[2])
    return (
        pairs > 0
        and slots * channels <= BATCHED_SCALE * SMALL_PATCH_ELEMENTS
        and slots <= BATCHED_MAX_PADDING * pairs
    )


def _with_spare_row(rows: torch.Tensor) -> torch.Tensor:
    """[N + 1, C]: `rows` and a zero row (what padded slots gather)."""
    return torch.cat([rows, rows.new_zeros((1, rows.shape[1]))])


def _offset_weights(weight: torch.Tensor, ks: list[int]) -> torch.Tensor:
    """weight [K, C_in, C_out] of offsets `ks` (all but the identity, or all)."""
    return weight if len(ks) == weight.shape[0] else weight[ks]


def _batched_gather(feats: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """[K', w, C]: feats of every padded slot of `KernelMap.padded` (zeros in the padding)."""
    ks, width, rows_in, _ = kmap.padded()
    return _with_spare_row(feats).index_select(0, rows_in).view(len(ks), width, -1)


def _dense_plus_scatter(
    dense: torch.Tensor | None, rows: int, width: int, like: torch.Tensor
) -> torch.Tensor:
    """[rows + 1, width] destination: `dense` (the identity's product) or zeros, plus a spare row."""
    out = like.new_empty((rows + 1, width))
    if dense is None:
        out.zero_()
    else:
        out[:rows] = dense
        out[rows].zero_()
    return out


def _batched_forward(
    feats: torch.Tensor, gathered: torch.Tensor, weight: torch.Tensor, kmap: KernelMap
) -> torch.Tensor:
    """`conv_forward` of a batched map: one `bmm` over the padded groups, summed into rows."""
    ks, _, _, rows_out = kmap.padded()
    dense = feats @ weight[kmap.identity] if kmap.identity >= 0 else None
    out = _dense_plus_scatter(dense, kmap.num_out, weight.shape[2], feats)
    products = torch.bmm(gathered, _offset_weights(weight, ks))
    out.index_add_(0, rows_out, products.view(-1, weight.shape[2]))
    return out[: kmap.num_out]


def _batched_backward(
    grad_out: torch.Tensor,
    feats: torch.Tensor,
    gathered: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    need_feats: bool,
    need_weight: bool,
    weight_grad_dtype: torch.dtype | None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """`conv_backward` of a batched map, given its forward's gathered slots (`_batched_gather`)."""
    ks, width, rows_in, rows_out = kmap.padded()
    grads = _with_spare_row(grad_out).index_select(0, rows_out).view(len(ks), width, -1)
    grad_weight = None
    if need_weight:
        dtype = weight_grad_dtype or weight.dtype
        per_offset = _cast(torch.bmm(gathered.transpose(1, 2), grads), dtype)
        if kmap.identity >= 0:
            grad_weight = weight.new_empty(weight.shape, dtype=dtype)
            grad_weight[ks] = per_offset
            grad_weight[kmap.identity] = _cast(feats.t() @ grad_out, dtype)
        else:
            grad_weight = per_offset
    grad_feats = None
    if need_feats:
        dense = grad_out @ weight[kmap.identity].t() if kmap.identity >= 0 else None
        grad_feats = _dense_plus_scatter(dense, kmap.num_in, weight.shape[1], grad_out)
        per_slot = torch.bmm(grads, _offset_weights(weight, ks).transpose(1, 2))
        grad_feats.index_add_(0, rows_in, per_slot.view(-1, weight.shape[1]))
        grad_feats = grad_feats[: kmap.num_in]
    return grad_feats, grad_weight


def _patch_worthwhile(kmap: KernelMap) -> bool:
    return kmap.in_unique and kmap.fill() >= PATCH_MIN_FILL


def conv_forward(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """out [N_out, C_out] = sum over pairs (i, o, k) of feats[i] @ weight[k] into row o; weight [K, C_in, C_out]."""
    if kmap.identity >= 0 and kmap.out_unique:
        return _whole_mm(feats, weight[kmap.identity])  # the identity is every pair (1x1 kernel)
    if _is_small(feats, kmap):  # (the pointwise case returned above)
        return _small_forward(feats, weight, kmap)
    if kmap.out_unique:
        out = _direct_pass(feats, weight, kmap, backward=False, need_out=True)
    elif _patch_worthwhile(kmap):
        out = _patch_pass(feats, weight, kmap, transpose=False, need_out=True)
    else:
        # the zero offset on the same set is a dense matmul: no gather, no scatter
        identity = weight[kmap.identity] if kmap.identity >= 0 else None
        out = _reduce_pass(feats, weight, kmap, True, range(kmap.kernel_volume), False, identity)
    assert out is not None
    return out


def conv_backward(
    grad_out: torch.Tensor,
    feats: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    need_feats: bool,
    need_weight: bool,
    weight_grad_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients w.r.t. feats [N_in, C_in] and weight [K, C_in, C_out].

    `weight_grad_dtype` (default: the weight's) is the dtype the weight gradient is summed in.
    """
    grad_out = grad_out.contiguous()
    if _is_small(feats, kmap) and not _is_pointwise(kmap):
        patch = _small_patch(feats, kmap)
        return _small_backward(
            grad_out, patch, weight, kmap, need_feats, need_weight, weight_grad_dtype
        )
    grad_weight = torch.zeros_like(weight, dtype=weight_grad_dtype) if need_weight else None
    identity = None
    if kmap.identity >= 0:
        identity = weight[kmap.identity].t()
        if grad_weight is not None:
            grad_weight[kmap.identity] = _whole_tmm(feats, grad_out, grad_weight.dtype)
        if kmap.in_unique:  # the identity is every pair there is (1x1 kernel)
            return (_whole_mm(grad_out, identity) if need_feats else None), grad_weight
    if kmap.in_unique:
        grad_feats = _direct_pass(grad_out, weight, kmap, True, need_feats, grad_weight, feats)
    elif kmap.mirror is not None:
        # pairs of offset j, read backwards, are the pairs of offset -j of the transposed map
        grad_feats = _reduce_pass(
            grad_out, weight, kmap, need_feats, kmap.mirror, True, identity, grad_weight, feats
        )
    elif kmap.out_unique and identity is None and _patch_worthwhile(kmap.reversed()):
        # a transposed convolution's input gradient is a strided convolution: patches
        grad_feats = _patch_pass(
            grad_out, weight, kmap.reversed(), True, need_feats, grad_weight, feats
        )
    else:
        # reversed map: "inputs" are output rows of the forward, "outputs" its input rows
        rev, wsel = kmap.reversed(), range(kmap.kernel_volume)
        grad_feats = _reduce_pass(
            grad_out, weight, rev, need_feats, wsel, True, identity, grad_weight, feats
        )
    return grad_feats, grad_weight


def compute_dtype(feats: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype a convolution runs in: autocast's for the device when it is on, else the common one."""
    device = feats.device.type
    if torch.is_autocast_enabled(device) and feats.dtype.is_floating_point:
        return torch.get_autocast_dtype(device)
    return torch.promote_types(feats.dtype, weight.dtype)


def _autocast_off(device: str) -> AbstractContextManager[Any]:
    """Autocast disabled inside the passes; no context switch at all when it is already off."""
    if torch.is_autocast_enabled(device):
        return torch.autocast(device, enabled=False)
    return nullcontext()


class SparseConvolutionFunction(torch.autograd.Function):
    """autograd wrapper: apply(feats [N_in, C_in], weight [K, C_in, C_out], kmap, bias=None) ->
    [N_out, C_out].

    Under `torch.autocast` both operands are cast to its dtype (bf16/fp16) and the pass runs in it,
    as autocast runs `torch.mm`; the weight gradient is summed in the weight's own dtype (float32)
    and both gradients come back in their inputs' dtypes. A `bias` is added as ``out + bias`` would
    add it (same dtype promotion, its gradient ``grad.sum_to_size(bias.shape)``), inside this one
    autograd node: for a tiny convolution a second node and its broadcast reduction cost more than
    the addition.
    """

    @staticmethod
    def forward(
        ctx: Any,
        feats: torch.Tensor,
        weight: torch.Tensor,
        kmap: KernelMap,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        out = SparseConvolutionFunction._convolve(ctx, feats, weight, kmap)
        ctx.bias = None if bias is None else (bias.shape, bias.dtype)
        if bias is None:
            return out
        dtype = torch.promote_types(out.dtype, bias.dtype)
        return (out if dtype == out.dtype else out.to(dtype)).add_(bias)  # out is ours: in place

    @staticmethod
    def _convolve(
        ctx: Any, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap
    ) -> torch.Tensor:
        dtype = compute_dtype(feats, weight)
        ctx.dtypes = feats.dtype, weight.dtype
        feats, weight = _cast(feats.contiguous(), dtype), _cast(weight, dtype)
        ctx.kmap = kmap
        ctx.route = "general"
        if use_triton(feats):  # CUDA: fused gather-GEMM-scatter kernels (sparse.triton)
            ctx.route = "triton"
        elif _is_small(feats, kmap) and not _is_pointwise(kmap):
            ctx.route = "small"
        elif _is_batched(feats, weight, kmap):
            ctx.route = "batched"
        with _autocast_off(feats.device.type):
            if ctx.route == "triton":
                from stseg_models.sparse.triton.function import triton_conv_forward

                ctx.save_for_backward(feats, weight)
                return triton_conv_forward(feats, weight, kmap)
            if ctx.route == "small":  # the patch matrix is all backward needs of feats: kept
                patch = _small_patch(feats, kmap)
                ctx.save_for_backward(patch, weight)
                return torch.mm(patch, weight.reshape(-1, weight.shape[2]))
            if ctx.route == "batched":  # the gathered slots are kept for the weight gradient
                gathered = _batched_gather(feats, kmap)
                ctx.save_for_backward(feats, gathered, weight)
                return _batched_forward(feats, gathered, weight, kmap)
            ctx.save_for_backward(feats, weight)
            return conv_forward(feats, weight, kmap)

    @staticmethod
    def backward(
        ctx: Any, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, None, torch.Tensor | None]:
        grad_bias = None
        if ctx.bias is not None and ctx.needs_input_grad[3]:
            shape, bias_dtype = ctx.bias  # what autograd does for a broadcast ``out + bias``
            grad_bias = _cast(grad_out.sum_to_size(shape), bias_dtype)
        feats_dtype, weight_dtype = ctx.dtypes
        saved = ctx.saved_tensors  # (each access unpacks them again)
        grad_out = _cast(grad_out, saved[-1].dtype)
        needs = ctx.needs_input_grad[0], ctx.needs_input_grad[1], weight_dtype
        with _autocast_off(grad_out.device.type):
            if ctx.route == "batched":
                feats, gathered, weight = saved
                # (its gathers copy grad_out: an expanded one needs no contiguous copy first)
                gf, gw = _batched_backward(grad_out, feats, gathered, weight, ctx.kmap, *needs)
            else:
                # a small map saved its patch matrix in place of feats (same arguments otherwise)
                feats, weight = saved
                backward = _small_backward if ctx.route == "small" else conv_backward
                if ctx.route == "triton":
                    from stseg_models.sparse.triton.function import triton_conv_backward

                    backward = triton_conv_backward
                gf, gw = backward(grad_out, feats, weight, ctx.kmap, *needs)
        return (_cast(gf, feats_dtype) if gf is not None else None), gw, None, grad_bias


def sparse_conv(
    feats: torch.Tensor,
    weight: torch.Tensor,
    kmap: KernelMap,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Differentiable sparse convolution, plus `bias` [1, C_out] if given (`SparseConvolutionFunction`)."""
    return SparseConvolutionFunction.apply(feats, weight, kmap, bias)
