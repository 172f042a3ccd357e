"""Kernel-map construction and row deduplication against brute-force references.

Coordinates are shuffled (not in key order) and spread over small and huge boxes, so every build
route is exercised: dense lookup table or sorted search, mirrored offsets swapped in place or
re-sorted, and the vectorised all-offsets route used on CUDA.
"""

from __future__ import annotations

import pytest
import torch

import stseg_models.sparse as ME
import stseg_models.sparse.kernel_map as km
from stseg_models.sparse.hashing import unique_rows


def shuffled_coords(n: int, extent: int, seed: int, sort: bool = False) -> torch.Tensor:
    """Unique integer rows [M, 4] (batch in 0..1), shuffled unless `sort`."""
    g = torch.Generator().manual_seed(seed)
    spatial = torch.randint(0, extent, (n, 3), generator=g)
    coords = torch.unique(torch.cat([torch.randint(0, 2, (n, 1), generator=g), spatial], 1), dim=0)
    if not sort:
        coords = coords[torch.randperm(len(coords), generator=g)]
    return coords.int()


def brute_pairs(
    in_c: torch.Tensor, out_c: torch.Tensor, offsets: torch.Tensor
) -> list[list[tuple[int, int]]]:
    """Per offset, (in row, out row) pairs sorted by out row, by dictionary lookup."""
    table = {tuple(r): i for i, r in enumerate(in_c.tolist())}
    out = []
    for off in offsets.tolist():
        pairs = []
        for o, r in enumerate(out_c.tolist()):
            i = table.get((r[0], *(a + b for a, b in zip(r[1:], off, strict=True))))
            if i is not None:
                pairs.append((i, o))
        out.append(pairs)
    return out


def as_pairs(kmap: km.KernelMap) -> list[list[tuple[int, int]]]:
    return [list(zip(i.tolist(), o.tolist(), strict=True)) for i, o in kmap.pairs()]


@pytest.mark.parametrize("sort", [False, True])
@pytest.mark.parametrize("extent", [6, 10**6])  # dense table / sorted search
@pytest.mark.parametrize("region", [ME.RegionType.HYPER_CUBE, ME.RegionType.HYPER_CROSS])
def test_same_set_map_equals_brute_force(sort: bool, extent: int, region) -> None:
    offsets = ME.KernelGenerator(3, region_type=region, dimension=3).region_offsets
    coords = shuffled_coords(300 if extent < 100 else 40, extent, seed=extent % 7, sort=True)
    if extent > 100:  # sparse in a huge box: add some neighbours so that pairs exist
        shifts = torch.cat([torch.zeros(len(offsets), 1, dtype=torch.int32), offsets.int()], 1)
        coords = torch.unique(torch.cat([coords + s for s in shifts[::4]]), dim=0)
    if not sort:
        coords = coords[torch.randperm(len(coords), generator=torch.Generator().manual_seed(1))]
    kmap = km.build_kernel_map(coords, coords, offsets, same_set=True)
    assert kmap.in_idx.dtype == kmap.out_idx.dtype == torch.int32
    # MinkowskiEngine's "cross" is the first offsets of the cube: not symmetric, no zero offset
    symmetric = region == ME.RegionType.HYPER_CUBE
    assert (kmap.mirror is not None) == symmetric and (kmap.identity >= 0) == symmetric
    assert as_pairs(kmap) == brute_pairs(coords, coords, offsets)
    assert kmap.counts == [len(p) for p in brute_pairs(coords, coords, offsets)]


@pytest.mark.parametrize("device_route", ["cpu", "vectorised"])
def test_strided_map_routes_agree(monkeypatch: pytest.MonkeyPatch, device_route: str) -> None:
    fine = shuffled_coords(400, 9, seed=3)
    coarse = torch.unique(
        torch.cat([fine[:, :1], torch.div(fine[:, 1:], 2, rounding_mode="floor") * 2], 1), dim=0
    ).int()
    offsets = ME.KernelGenerator(2, 2, dimension=3).region_offsets  # scaled by stride 1
    if device_route == "vectorised":
        # the CUDA route, run on the CPU: one [K, N_out] lookup
        monkeypatch.setattr(km, "_on_cpu", lambda device: False)
    kmap = km.build_kernel_map(fine, coarse, offsets)
    assert as_pairs(kmap) == brute_pairs(fine, coarse, offsets)
    assert kmap.in_unique and not kmap.out_unique and sum(kmap.counts) == len(fine)


@pytest.mark.parametrize("extent", [5, 10**4])  # dense first-occurrence table / sort
def test_unique_rows_keeps_first_occurrence(extent: int) -> None:
    g = torch.Generator().manual_seed(extent % 11)
    base = torch.randint(0, extent, (40, 4), generator=g)
    coords = base[torch.randint(0, 40, (200,), generator=g)]  # many duplicates, any order
    unique_index, inverse = unique_rows(coords)
    seen: dict[tuple[int, ...], int] = {}
    for i, r in enumerate(coords.tolist()):
        seen.setdefault(tuple(r), i)
    assert unique_index.tolist() == sorted(seen.values())
    assert torch.equal(coords[unique_index][inverse], coords)


def test_unique_rows_sorted_unique_input_is_identity() -> None:
    coords = shuffled_coords(100, 8, seed=2, sort=True)
    unique_index, inverse = unique_rows(coords)
    assert torch.equal(unique_index, torch.arange(len(coords)))
    assert torch.equal(inverse, torch.arange(len(coords)))
