"""Triton kernels of a sparse convolution over a kernel map, and their launchers.

Two kernels cover the three products (``out = sum_k gather(src) @ W_k``):

* `_gather_gemm_kernel`, output-stationary: one program owns a tile of BLOCK_M destination rows x
  BLOCK_N destination channels; it loops over the K offsets, gathers its rows' source rows through
  the neighbour table (`tables`), multiplies them by the offset's weight tile and accumulates in
  float32 registers, then writes the tile once. Every destination element has one writer: no
  atomics, no zero-fill, no scatter buffer, and the result does not depend on scheduling
  (bit-for-bit reproducible). An offset with no pair in the tile is skipped; empty rows inside a
  tile are loaded as zeros (masked loads read no memory). The forward runs it on the map's table
  and W; the input gradient on the other side's table and W^T, read through swapped strides.
* `_weight_grad_kernel`: ``grad_W[k] = gather(a, in_idx_k)^T @ gather(b, out_idx_k)``, one program
  per (offset, split of its pairs, output tile), each looping over its pairs; per-split float32
  partial sums go to a buffer summed afterwards (deterministic, unlike float32 atomics).

Half-precision inputs are multiplied on tensor cores with float32 accumulation; float32 uses IEEE
products unless ``torch.backends.cuda.matmul.allow_tf32`` is on (as `torch.mm` does). Tile sizes
are fixed per channel count (`gather_gemm_config`, `weight_grad_config`), not autotuned: the
GPU benchmark (benchmarks/triton_conv.py) is where other choices would be measured.
`compile_ahead` builds the kernels for a GPU without one (the tests' check that they compile).
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

# float32 partial sums of the weight gradient: at most this many values (256 MiB) across splits
PARTIAL_ELEMENTS = 2**26
# pairs one weight-gradient program sums before another split is worth its partial buffer
PAIRS_PER_SPLIT = 2048


@triton.jit
def _gather_gemm_kernel(
    src_ptr,
    table_ptr,
    w_ptr,
    out_ptr,
    n_rows,
    c_src,
    c_dst,
    k_count,
    stride_src,
    stride_wk,
    stride_wc,
    stride_wn,
    stride_out,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """out[r, n] = sum_k sum_c src[table[k, r], c] * W[k, c, n] (table -1: no term)."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < n_rows
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < c_dst
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, k_count):
        nbr = tl.load(table_ptr + k * n_rows + rows, mask=row_ok, other=-1)
        hit = nbr >= 0
        if tl.max(hit.to(tl.int32), axis=0) > 0:
            # 64-bit row offsets: N * C passes 2**31 on large clouds
            src_rows = tl.where(hit, nbr, 0).to(tl.int64) * stride_src
            for c0 in range(0, c_src, BLOCK_K):
                chans = c0 + tl.arange(0, BLOCK_K)
                chan_ok = chans < c_src
                a = tl.load(
                    src_ptr + src_rows[:, None] + chans[None, :],
                    mask=hit[:, None] & chan_ok[None, :],
                    other=0.0,
                )
                b = tl.load(
                    w_ptr + k * stride_wk + chans[:, None] * stride_wc + cols[None, :] * stride_wn,
                    mask=chan_ok[:, None] & col_ok[None, :],
                    other=0.0,
                )
                if UPCAST:
                    a = a.to(tl.float32)
                    b = b.to(tl.float32)
                acc = tl.dot(a, b, acc, input_precision=PRECISION)
    out_rows = rows.to(tl.int64) * stride_out
    tl.store(
        out_ptr + out_rows[:, None] + cols[None, :],
        acc.to(out_ptr.dtype.element_ty),
        mask=row_ok[:, None] & col_ok[None, :],
    )


@triton.jit
def _weight_grad_kernel(
    a_ptr,
    b_ptr,
    a_idx_ptr,
    b_idx_ptr,
    starts_ptr,
    partial_ptr,
    c_a,
    c_b,
    k_count,
    pairs_per_split,
    stride_a,
    stride_b,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_P: tl.constexpr,
    PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """partial[s, k] = sum over pairs p of split s of offset k of a[a_idx[p]]^T b[b_idx[p]]."""
    k = tl.program_id(0)
    split = tl.program_id(1)
    tiles_n = tl.cdiv(c_b, BLOCK_N)
    pid_m = tl.program_id(2) // tiles_n
    pid_n = tl.program_id(2) % tiles_n
    ca = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    ca_ok = ca < c_a
    cb = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    cb_ok = cb < c_b
    first = tl.load(starts_ptr + k)
    end = tl.load(starts_ptr + k + 1)
    lo = first + split * pairs_per_split
    hi = tl.minimum(end, lo + pairs_per_split)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for p0 in range(lo, hi, BLOCK_P):
        pairs = p0 + tl.arange(0, BLOCK_P)
        ok = pairs < hi
        ia = tl.load(a_idx_ptr + pairs, mask=ok, other=0).to(tl.int64) * stride_a
        ib = tl.load(b_idx_ptr + pairs, mask=ok, other=0).to(tl.int64) * stride_b
        a_t = tl.load(
            a_ptr + ia[None, :] + ca[:, None], mask=ok[None, :] & ca_ok[:, None], other=0.0
        )
        b = tl.load(b_ptr + ib[:, None] + cb[None, :], mask=ok[:, None] & cb_ok[None, :], other=0.0)
        if UPCAST:
            a_t = a_t.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a_t, b, acc, input_precision=PRECISION)
    base = (split * k_count + k).to(tl.int64) * c_a * c_b
    tl.store(
        partial_ptr + base + ca[:, None] * c_b + cb[None, :],
        acc,
        mask=ca_ok[:, None] & cb_ok[None, :],
    )


# how Triton built the kernels: it reads TRITON_INTERPRET once, when first imported, so the kernels'
# own type says whether they run in the interpreter, whatever the variable says now
INTERPRETED = not isinstance(_gather_gemm_kernel, triton.runtime.jit.JITFunction)


def _block(channels: int, low: int, high: int) -> int:
    """A power-of-two tile edge covering `channels`, within [low, high] (tl.dot needs >= 16)."""
    return max(low, min(high, triton.next_power_of_2(max(channels, 1))))


def _precision(dtype: torch.dtype) -> str:
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"  # the setting only applies to float32 operands


def _upcast(dtype: torch.dtype) -> bool:
    """bfloat16 operands go to tl.dot as float32 under the interpreter only.

    Triton 3.9's interpreter multiplies bfloat16 blocks as their raw uint16 bits (its `create_dot`
    converts only 8-bit floats), so results are garbage there. bfloat16 -> float32 is exact and
    so are the products of two bfloat16 values in float32: with float32 accumulation this is the
    arithmetic of a tensor-core bfloat16 dot, so the check stays meaningful. Compiled kernels
    always hand bfloat16 to tl.dot.
    """
    return dtype == torch.bfloat16 and INTERPRETED


NUM_WARPS, NUM_STAGES = 4, 3


def _launch_options() -> dict[str, int]:
    # the interpreter runs every program serially in NumPy: warps and stages mean nothing there
    return {} if INTERPRETED else {"num_warps": NUM_WARPS, "num_stages": NUM_STAGES}


def gather_gemm_config(c_src: int, c_dst: int, dtype: torch.dtype) -> dict[str, Any]:
    """The constexpr arguments `gather_gemm` launches `_gather_gemm_kernel` with."""
    return {
        "BLOCK_M": 64,
        "BLOCK_N": _block(c_dst, 16, 128),
        "BLOCK_K": _block(c_src, 16, 32 if dtype == torch.float32 else 64),
        "PRECISION": _precision(dtype),
        "UPCAST": _upcast(dtype),
    }


def weight_grad_config(c_a: int, c_b: int, dtype: torch.dtype) -> dict[str, Any]:
    """The constexpr arguments `weight_grad` launches `_weight_grad_kernel` with."""
    return {
        "BLOCK_M": _block(c_a, 16, 64),
        "BLOCK_N": _block(c_b, 16, 64),
        "BLOCK_P": 32,
        "PRECISION": _precision(dtype),
        "UPCAST": _upcast(dtype),
    }


def gather_gemm(
    src: torch.Tensor, table: torch.Tensor, weight: torch.Tensor, transpose: bool
) -> torch.Tensor:
    """[N_dst, C_dst] with row r = sum_k src[table[k, r]] @ W_k (W_k^T with `transpose`).

    src [N_src, C_src] contiguous; table int32 [K, N_dst] contiguous; weight [K, C_in, C_out] in
    src's dtype. The result has src's dtype (float32 accumulation).
    """
    k_count, n_rows = table.shape
    c_src = src.shape[1]
    c_dst = weight.shape[1] if transpose else weight.shape[2]
    sk, sc, sn = weight.stride()
    if transpose:
        sc, sn = sn, sc
    out = src.new_empty((n_rows, c_dst))
    if n_rows == 0 or c_dst == 0:
        return out
    config = gather_gemm_config(c_src, c_dst, src.dtype)
    grid = (triton.cdiv(n_rows, config["BLOCK_M"]), triton.cdiv(c_dst, config["BLOCK_N"]))
    _gather_gemm_kernel[grid](
        src,
        table,
        weight,
        out,
        n_rows,
        c_src,
        c_dst,
        k_count,
        src.stride(0),
        sk,
        sc,
        sn,
        out.stride(0),
        **config,
        **_launch_options(),
    )
    return out


def _splits(max_pairs: int, values_per_split: int) -> tuple[int, int]:
    """(splits, pairs per split) of the largest offset's pairs within `PARTIAL_ELEMENTS`."""
    most = max(1, PARTIAL_ELEMENTS // max(values_per_split, 1))
    splits = max(1, min(most, triton.cdiv(max_pairs, PAIRS_PER_SPLIT)))
    return splits, max(1, triton.cdiv(max_pairs, splits))


def weight_grad(
    a: torch.Tensor,
    b: torch.Tensor,
    a_idx: torch.Tensor,
    b_idx: torch.Tensor,
    starts: torch.Tensor,
    counts: list[int],
) -> torch.Tensor:
    """float32 [K, C_a, C_b]: block k = a[a_idx_k]^T @ b[b_idx_k] over offset k's pairs.

    a [N_a, C_a], b [N_b, C_b] contiguous, one dtype; a_idx, b_idx int32 [P] offset-major;
    starts int32 [K + 1] on the device (`tables.pair_starts`); counts on the host.
    """
    k_count, c_a, c_b = len(counts), a.shape[1], b.shape[1]
    if k_count == 0 or c_a == 0 or c_b == 0 or max(counts) == 0:
        return torch.zeros((k_count, c_a, c_b), dtype=torch.float32, device=a.device)
    splits, per_split = _splits(max(counts), k_count * c_a * c_b)
    partial = torch.empty((splits, k_count, c_a, c_b), dtype=torch.float32, device=a.device)
    config = weight_grad_config(c_a, c_b, a.dtype)
    tiles = triton.cdiv(c_a, config["BLOCK_M"]) * triton.cdiv(c_b, config["BLOCK_N"])
    grid = (k_count, splits, tiles)
    _weight_grad_kernel[grid](
        a,
        b,
        a_idx,
        b_idx,
        starts,
        partial,
        c_a,
        c_b,
        k_count,
        per_split,
        a.stride(0),
        b.stride(0),
        **config,
        **_launch_options(),
    )
    return partial[0] if splits == 1 else partial.sum(0)


_TYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def compile_ahead(arch: int, dtype: torch.dtype, c_in: int, c_out: int) -> dict[str, Any]:
    """Both kernels compiled for CUDA compute capability `arch` (e.g. 90), no GPU needed.

    Triton's own compiler and the ptxas in its wheel turn the kernels into cubins exactly as a
    first launch would (generic integer arguments: no divisibility specialisation), with the
    constexprs of a forward of `c_in` -> `c_out` channels. The interpreter does not check that
    a kernel compiles (it runs the Python); this does. Returns {kernel name: CompiledKernel}.
    Compiled mode only (not under ``TRITON_INTERPRET=1``).
    """
    if INTERPRETED:
        raise RuntimeError("compile_ahead needs compiled mode: TRITON_INTERPRET was on at import")
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    name = _TYPE_NAMES[dtype]
    data = {"src_ptr", "w_ptr", "out_ptr", "a_ptr", "b_ptr"}
    index = {"table_ptr", "a_idx_ptr", "b_idx_ptr", "starts_ptr"}
    kernels = {
        "gather_gemm": (_gather_gemm_kernel, gather_gemm_config(c_in, c_out, dtype)),
        "weight_grad": (_weight_grad_kernel, weight_grad_config(c_in, c_out, dtype)),
    }
    target = GPUTarget("cuda", arch, 32)
    options = {"num_warps": NUM_WARPS, "num_stages": NUM_STAGES}
    compiled = {}
    for key, (kernel, config) in kernels.items():
        signature = {}
        for arg in kernel.arg_names:
            if arg in config:
                signature[arg] = "constexpr"
            elif arg in data:
                signature[arg] = f"*{name}"
            elif arg in index:
                signature[arg] = "*i32"
            elif arg == "partial_ptr":
                signature[arg] = "*fp32"
            else:
                signature[arg] = "i32"
        source = ASTSource(kernel, signature, config)
        compiled[key] = triton.compile(source, target=target, options=options)
    return compiled
