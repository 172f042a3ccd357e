"""The same weights give the same outputs on the native engine and on MinkowskiEngine (`nox -s compat`).

Skipped where MinkowskiEngine does not import (`stseg-models install-minkowski` builds it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stseg_models.inference import output_rows
from stseg_models.sparse import backends
from stseg_models.sparse.errors import SparseBackendError
from stseg_models.zoo import build_model

pytestmark = [
    pytest.mark.minkowski,
    pytest.mark.skipif(
        not backends()["minkowski"].available, reason="MinkowskiEngine is not importable"
    ),
]


@pytest.mark.parametrize(
    ("name", "dimension"),
    [("Res16UNet14A", 3), ("MinkUNet14A", 3), ("ResUNetINBN14", 3), ("STResTesseract16UNet18A", 4)],
)
def test_native_and_minkowski_agree(name, dimension):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    native = build_model(name, 3, 5, backend="native").eval()
    minkowski = build_model(name, 3, 5, backend="minkowski").eval()
    minkowski.load_state_dict(native.state_dict(), strict=True)
    rng = np.random.default_rng(0)
    xyz = np.unique(rng.integers(0, 16, size=(400, dimension)), axis=0)
    coords = torch.from_numpy(np.hstack([np.zeros((len(xyz), 1)), xyz]).astype(np.int32))
    feats = torch.from_numpy(rng.uniform(-0.5, 0.5, size=(len(coords), 3)).astype(np.float32))
    with torch.no_grad():
        a = native(native._me.SparseTensor(feats, coordinates=coords))
        b = minkowski(minkowski._me.SparseTensor(feats, coordinates=coords))
    rows_a, rows_b = output_rows(a.C, coords), output_rows(b.C, coords)
    fa = a.F if rows_a is None else a.F[rows_a]
    fb = b.F if rows_b is None else b.F[rows_b]
    torch.testing.assert_close(fa, fb, rtol=1e-4, atol=1e-4)


def test_minkowski_refuses_the_hybrid_st_networks_clearly():
    # MinkowskiEngine 0.5.4 has no HYBRID region and a broken CUSTOM one: the ST networks with
    # hybrid residual blocks must fail with our backend error, not deep inside MinkowskiEngine.
    with pytest.raises(SparseBackendError, match="hybrid kernel"):
        build_model("STRes16UNet14A", 3, 5, backend="minkowski")
