"""Test helpers for code that compares itself with MinkowskiEngine (used by stseg's own suites).

`minkowski_or_skip()` is the one place that decides what a compat test does when MinkowskiEngine
is not importable: skip (a plain `pytest` run on a machine without the C++ build) or fail (with
`STSEG_REQUIRE_MINKOWSKI=1`, as `nox -s compat` sets, where a missing build must not pass
silently as skips). pytest is imported only when the helper is called.
"""

from __future__ import annotations

import os
from types import ModuleType

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
