"""`stseg_models.testing.minkowski_or_skip`: skip without MinkowskiEngine, fail when it is required."""

from __future__ import annotations

import pytest

from stseg_models.sparse.backend import SparseBackendError, import_minkowski
from stseg_models.testing import REQUIRE_ENV, minkowski_or_skip


def _available() -> bool:
    try:
        import_minkowski()
    except SparseBackendError:
        return False
    return True


def test_skip_or_fail_without_minkowski(monkeypatch: pytest.MonkeyPatch) -> None:
    if _available():
        module = minkowski_or_skip()
        assert module.__name__ == "MinkowskiEngine" and hasattr(module, "SparseTensor")
        return
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="MinkowskiEngine not available"):
        minkowski_or_skip(module_level=False)
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(SparseBackendError, match="not importable"):
        minkowski_or_skip()
