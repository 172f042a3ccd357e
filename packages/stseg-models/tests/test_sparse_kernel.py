"""Kernel offsets follow MinkowskiEngine's measured order; bad kernels are rejected up front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.sparse.kernel import region_offsets

REFERENCE = json.loads(
    (Path(__file__).parent / "data" / "minkowski_kernel_offsets.json").read_text()
)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_offsets_match_minkowski_reference(name: str) -> None:
    dim, region, size = name.split("_")
    region_type = ME.RegionType.HYPER_CUBE if region == "hypercube" else ME.RegionType.HYPER_CROSS
    gen = ME.KernelGenerator(int(size[1:]), region_type=region_type, dimension=int(dim[1:]))
    assert gen.region_offsets.tolist() == REFERENCE[name]
    assert gen.kernel_volume == len(REFERENCE[name])


def test_hybrid_4d_is_spatial_cube_then_time_cross() -> None:
    cube, cross = ME.RegionType.HYPER_CUBE, ME.RegionType.HYPER_CROSS
    gen = ME.KernelGenerator(3, axis_types=[cube, cube, cube, cross], dimension=4)
    offsets = gen.region_offsets.tolist()
    assert gen.kernel_volume == 29
    assert offsets[:27] == [[*o, 0] for o in REFERENCE["D3_hypercube_k3"]]
    assert offsets[27:] == [[0, 0, 0, -1], [0, 0, 0, 1]]
    assert gen.region_type == ME.RegionType.HYBRID


def test_hybrid_size5_time_cross() -> None:
    cube, cross = ME.RegionType.HYPER_CUBE, ME.RegionType.HYPER_CROSS
    offsets = region_offsets(ME.RegionType.HYBRID, (3, 3, 3, 5), (cube, cube, cube, cross))
    assert len(offsets) == 27 + 4
    assert offsets[27:] == [(0, 0, 0, -2), (0, 0, 0, -1), (0, 0, 0, 1), (0, 0, 0, 2)]


def test_custom_offsets_kept_in_order() -> None:
    custom = torch.tensor([[0, 0, 0], [2, 0, 0], [0, -1, 0]])
    gen = ME.KernelGenerator(
        1, region_type=ME.RegionType.CUSTOM, region_offsets=custom, dimension=3
    )
    assert gen.region_offsets.tolist() == custom.tolist()


def test_even_kernel_size_4_spans_zero_to_three() -> None:
    gen = ME.KernelGenerator(4, dimension=1)
    assert gen.region_offsets.flatten().tolist() == [0, 1, 2, 3]


def test_per_axis_kernel_size() -> None:
    gen = ME.KernelGenerator([3, 1, 2], dimension=3)
    assert gen.kernel_volume == 6
    assert gen.region_offsets.tolist()[:3] == [[-1, 0, 0], [0, 0, 0], [1, 0, 0]]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kernel_size": 0, "dimension": 3}, "kernel_size"),
        ({"kernel_size": 3, "dimension": 0}, "dimension"),
        ({"kernel_size": [3, 3], "dimension": 3}, "kernel_size"),
        ({"kernel_size": 2.5, "dimension": 3}, "kernel_size"),
        ({"kernel_size": 2, "region_type": ME.RegionType.HYPER_CROSS, "dimension": 3}, "odd"),
        ({"kernel_size": 3, "stride": 0, "dimension": 3}, "stride"),
        ({"kernel_size": 3, "dilation": 0, "dimension": 3}, "dilation"),
        (
            {"kernel_size": 3, "axis_types": [ME.RegionType.HYPER_CUBE] * 3, "dimension": 4},
            "axis_types",
        ),
        ({"kernel_size": 3, "region_type": ME.RegionType.CUSTOM, "dimension": 3}, "region_offsets"),
        ({"kernel_size": 3, "region_type": ME.RegionType.HYBRID, "dimension": 4}, "axis_types"),
    ],
)
def test_bad_kernels_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ME.SparseInputError, match=match):
        ME.KernelGenerator(**kwargs)


def test_conv_rejects_missing_dimension() -> None:
    with pytest.raises(ME.SparseInputError, match="dimension"):
        ME.MinkowskiConvolution(4, 4, kernel_size=3)
