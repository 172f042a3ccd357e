"""Slow, obviously-correct loop implementations used as test oracles (never in a model).

Every function works on plain Python dictionaries keyed by coordinate tuples, so it shares no code
with the vectorised engine it checks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def coord_dict(coords: torch.Tensor) -> dict[tuple[int, ...], int]:
    """{coordinate tuple: row} for integer coordinates [N, 1+D]."""
    return {tuple(int(v) for v in row): i for i, row in enumerate(coords.tolist())}


def strided_coords(coords: torch.Tensor, tensor_stride: Sequence[int]) -> set[tuple[int, ...]]:
    """Set of coordinates floored to `tensor_stride` (batch column kept)."""
    out = set()
    for row in coords.tolist():
        out.add((row[0], *[(v // s) * s for v, s in zip(row[1:], tensor_stride, strict=True)]))
    return out


def conv_reference(
    feats: torch.Tensor,
    in_coords: torch.Tensor,
    out_coords: torch.Tensor,
    weight: torch.Tensor,
    offsets: Sequence[Sequence[int]],
    scale: Sequence[int],
) -> torch.Tensor:
    """out[p] = sum_k weight[k]^T feats[p + scale * offset_k] (absent neighbours skipped)."""
    table = coord_dict(in_coords)
    out = feats.new_zeros((out_coords.shape[0], weight.shape[2]))
    for o, p in enumerate(out_coords.tolist()):
        for k, off in enumerate(offsets):
            q = (p[0], *[a + s * d for a, s, d in zip(p[1:], scale, off, strict=True)])
            i = table.get(q)
            if i is not None:
                out[o] += feats[i] @ weight[k]
    return out


def transposed_conv_reference(
    feats: torch.Tensor,
    coarse: torch.Tensor,
    fine: torch.Tensor,
    weight: torch.Tensor,
    offsets: Sequence[Sequence[int]],
    fine_scale: Sequence[int],
) -> torch.Tensor:
    """out[p] += weight[k]^T feats[q] for every coarse q and fine p = q + fine_scale * offset_k."""
    table = coord_dict(fine)
    out = feats.new_zeros((fine.shape[0], weight.shape[2]))
    for qi, q in enumerate(coarse.tolist()):
        for k, off in enumerate(offsets):
            p = (q[0], *[a + s * d for a, s, d in zip(q[1:], fine_scale, off, strict=True)])
            o = table.get(p)
            if o is not None:
                out[o] += feats[qi] @ weight[k]
    return out


def pool_reference(
    feats: torch.Tensor,
    in_coords: torch.Tensor,
    out_coords: torch.Tensor,
    offsets: Sequence[Sequence[int]],
    scale: Sequence[int],
    mode: str,
) -> torch.Tensor:
    """Max / avg / sum of the present neighbours of each output row.

    A row without neighbours is 0, or for max the dtype's lowest value (MinkowskiEngine 0.5.4's
    max-pooling kernel starts every output there; measured with kernel 3 at stride 4 or dilation 2).
    """
    table = coord_dict(in_coords)
    rows = []
    for p in out_coords.tolist():
        found = []
        for off in offsets:
            q = (p[0], *[a + s * d for a, s, d in zip(p[1:], scale, off, strict=True)])
            if q in table:
                found.append(feats[table[q]])
        stack = torch.stack(found) if found else feats.new_zeros((1, feats.shape[1]))
        if mode == "max":
            rows.append(
                stack.max(dim=0).values
                if found
                else feats.new_full((feats.shape[1],), torch.finfo(feats.dtype).min)
            )
        elif mode == "avg":
            rows.append(stack.mean(dim=0))
        else:
            rows.append(stack.sum(dim=0))
    return torch.stack(rows)


def dense_conv3d_reference(
    dense: torch.Tensor, weight: torch.Tensor, offsets: Sequence[Sequence[int]]
) -> torch.Tensor:
    """Stride-1 3D convolution of a dense [C_in, X, Y, Z] grid with zero padding, as a sum of shifts."""
    c_out = weight.shape[2]
    out = dense.new_zeros((c_out, *dense.shape[1:]))
    size = dense.shape[1:]
    for k, off in enumerate(offsets):
        shifted = dense.new_zeros(dense.shape)
        src = [slice(max(0, d), min(n, n + d)) for d, n in zip(off, size, strict=True)]
        dst = [slice(max(0, -d), min(n, n - d)) for d, n in zip(off, size, strict=True)]
        shifted[(slice(None), *dst)] = dense[(slice(None), *src)]
        out += torch.einsum("cxyz,co->oxyz", shifted, weight[k])
    return out
