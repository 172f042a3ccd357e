"""Test helpers for code that compares itself with MinkowskiEngine (used by stseg's own suites).

`minkowski_or_skip()` is the one place that decides what a compat test does when MinkowskiEngine
is not importable: skip (a plain `pytest` run on a machine without the C++ build) or fail (with
`STSEG_REQUIRE_MINKOWSKI=1`, as `nox -s compat` sets, where a missing build must not pass
silently as skips). pytest is imported only when the helper is called.

`random_cloud()` is the random two-scene 3D point cloud the engine's own tests convolve.
"""

from __future__ import annotations

import os
from types import ModuleType

import torch

from stseg_models.sparse.backend import SparseBackendError, import_minkowski

REQUIRE_ENV = "STSEG_REQUIRE_MINKOWSKI"


def minkowski_or_skip(*, module_level: bool = True) -> ModuleType:
    """The `MinkowskiEngine` module; else skip the calling test module (or test, with
    `module_level=False`), or re-raise when `STSEG_REQUIRE_MINKOWSKI` is set."""
    try:
        return import_minkowski()
    except SparseBackendError as exc:
        if os.environ.get(REQUIRE_ENV):
            raise
        import pytest

        pytest.skip(f"MinkowskiEngine not available: {exc}", allow_module_level=module_level)
        raise  # not reached (pytest.skip raises); keeps the return type honest for mypy


def random_cloud(
    n: int, extent: int, channels: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(coords int32 [M, 4], feats float32 [M, channels]): `n` random voxels in a cube of side
    `extent` over two batch items, duplicates merged (M <= n, sorted), standard normal features;
    the same values for the same arguments."""
    g = torch.Generator().manual_seed(seed)
    spatial = torch.randint(0, extent, (n, 3), generator=g)
    batch = torch.randint(0, 2, (n, 1), generator=g)
    coords = torch.unique(torch.cat([batch, spatial], 1), dim=0).int()
    return coords, torch.randn(len(coords), channels, generator=g)
