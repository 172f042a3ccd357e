"""What MinkowskiEngine 0.5.4's own test files rely on, native == ME; `nox -s compat` (issue #27).

* per-batch decomposition: one entry per batch index 0..max, an empty one for a missing index;
* ``MinkowskiGlobalPoolingFunction`` over a TensorField's ``coordinate_field_map_key``;
* ME's ``sys.path.append(<package folder>)``: ``from MinkowskiOps import ...``, ``import utils``,
  ``from utils.gradcheck import gradcheck`` after ``import MinkowskiEngine`` -- the alias side runs
  in a fresh interpreter whose path finder does not see the real MinkowskiEngine;
* ``import MinkowskiEngineBackend._C`` (the tests' ``_C.ConvolutionMode``);
* a bare ``MinkowskiEngine/`` folder (no ``__init__.py``) is not an installation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import stseg_models.sparse as NATIVE
from stseg_models.testing import minkowski_or_skip

pytestmark = pytest.mark.minkowski

MINK = minkowski_or_skip()

# batch ids {0, 2} (1 missing) and {1, 3} (0 and 2 missing, rows out of order)
COORDS = {
    "gap": [[0, 0, 0], [0, 1, 1], [0, 2, 0], [2, 0, 0], [2, 1, 1]],
    "late": [[3, 1, 1], [1, 0, 0], [3, 0, 2]],
}


def decomposition(engine: object, coords: list[list[int]], field: bool) -> dict:
    c = torch.tensor(coords, dtype=torch.int32)
    f = torch.arange(len(coords) * 2, dtype=torch.float64).view(-1, 2)
    x = engine.TensorField(f, c.double()) if field else engine.SparseTensor(f, c)  # type: ignore[attr-defined]
    return {
        "coords": [sorted(map(tuple, t.tolist())) for t in x.decomposed_coordinates],
        "feats": [sorted(map(tuple, t.tolist())) for t in x.decomposed_features],
        "rows": [sorted(t.tolist()) for t in x.decomposition_permutations],
    }


@pytest.mark.me_names("SparseTensor", "TensorField")
@pytest.mark.parametrize("field", [False, True], ids=["sparse", "field"])
def test_decomposition_has_one_entry_per_batch_index(field: bool) -> None:
    ours = decomposition(NATIVE, COORDS["gap"], field)
    assert ours == decomposition(MINK, COORDS["gap"], field)
    assert [len(r) for r in ours["rows"]] == [3, 0, 2]


@pytest.mark.me_names("SparseTensor")
def test_decomposition_leading_empty_batches() -> None:
    ours = decomposition(NATIVE, COORDS["late"], field=False)
    assert [len(r) for r in ours["rows"]] == [0, 1, 0, 2]
    assert ours["coords"][3] == [(0, 2), (1, 1)]
    # MinkowskiEngine 0.5.4 asserts ("Invalid out_coordinate_map") on a set without batch 0 in
    # its SparseTensor origin map, so this case is compared on the TensorField side only
    assert decomposition(NATIVE, COORDS["late"], True) == decomposition(MINK, COORDS["late"], True)


@pytest.mark.me_names("MinkowskiGlobalPoolingFunction", "MinkowskiGlobalMaxPooling", "TensorField")
def test_global_pooling_function_on_field_key() -> None:
    g = torch.Generator().manual_seed(3)
    coords = torch.tensor(COORDS["gap"] + [[1, 4, 4]], dtype=torch.float64)
    feats = torch.randn(len(coords), 3, generator=g, dtype=torch.float64)
    results = []
    for engine in (NATIVE, MINK):
        x = engine.TensorField(feats.clone().requires_grad_(), coords)
        pool = engine.MinkowskiGlobalMaxPooling()
        out = pool(x)
        fn = engine.MinkowskiGlobalPoolingFunction
        y = fn.apply(
            x.F, pool.pooling_mode, x.coordinate_field_map_key, out.coordinate_map_key, x._manager
        )
        order = torch.argsort(out.C[:, 0])  # MinkowskiEngine's output rows follow its hash order
        (y[order] * torch.arange(1.0, 4.0, dtype=y.dtype).unsqueeze(1)).sum().backward()
        results.append((y.detach()[order], x.F.grad))  # type: ignore[union-attr]
    (ours, our_grad), (theirs, their_grad) = results
    assert ours.shape == (3, 3)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        ours, torch.stack([feats[[0, 1, 2]].amax(0), feats[5], feats[[3, 4]].amax(0)])
    )
    torch.testing.assert_close(our_grad, their_grad, rtol=0, atol=0)


# -- fresh interpreters: top-level module names and bare folders --------------------------------

HIDE_REAL = """
import importlib.machinery, os, sys
class _Hidden(importlib.machinery.PathFinder):  # this interpreter has no real MinkowskiEngine
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if path is None and name in ("MinkowskiEngine", "MinkowskiEngineBackend"):
            # the path without the folders that hold the real package (a bare folder stays)
            real = os.path.join("MinkowskiEngine", "__init__.py")
            path = [p for p in sys.path if not os.path.isfile(os.path.join(p or ".", real))]
        return super().find_spec(name, path, target)
sys.meta_path[:] = [_Hidden if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
"""

TOPLEVEL_PROBE = """
import json, sys, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    from stseg_models.sparse import install_alias
    aliased = install_alias()
    import MinkowskiEngine as ME
from MinkowskiOps import MinkowskiLinear, MinkowskiToSparseTensor
from MinkowskiTensor import SparseTensorQuantizationMode
from MinkowskiTensorField import TensorField
import utils
import torch
UTILS_NAMES = ("sparse_quantize", "ravel_hash_vec", "fnv_hash_vec", "unique_coordinate_map",
    "SparseCollation", "batched_coordinates", "sparse_collate", "batch_sparse_collate",
    "kaiming_normal_", "summary")
try:  # MinkowskiEngine 0.5.4's own copy imports torch._six, gone in PyTorch 2
    from utils.gradcheck import gradcheck
    x = ME.SparseTensor(torch.rand(4, 2), torch.IntTensor([[0, 0], [0, 1], [1, 0], [1, 2]]))
    feats = torch.rand(4, 2, dtype=torch.float64, requires_grad=True)
    mode = ME.MinkowskiGlobalAvgPooling().pooling_mode
    checked = gradcheck(ME.MinkowskiGlobalPoolingFunction(), (feats, mode, x.coordinate_map_key, None, x._manager))
except ModuleNotFoundError as exc:
    checked = f"ModuleNotFoundError: {exc.name}"
print(json.dumps({
    "aliased": aliased,
    "names": [MinkowskiLinear.__name__, MinkowskiToSparseTensor.__name__, TensorField.__name__],
    "modes": [m.name for m in SparseTensorQuantizationMode],
    "utils_names": [n for n in UTILS_NAMES if hasattr(utils, n)],
    "same_class": MinkowskiLinear is ME.MinkowskiLinear,
    "backend_mode": __import__("MinkowskiEngineBackend._C")._C.ConvolutionMode.DIRECT_GEMM.name,
    "gradcheck": checked,
    "warnings": [str(w.message) for w in caught if "MinkowskiEngine folder" in str(w.message)],
    "engine_file": getattr(ME, "__file__", None) is not None,
}))
"""


def run_fresh(code: str, tmp_path: Path, hide_real: bool, extra_path: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "STSEG_MINKOWSKI_ALIAS"}
    env["OMP_NUM_THREADS"] = "1"
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    script = (HIDE_REAL if hide_real else "") + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.me_names(
    "MinkowskiLinear", "MinkowskiToSparseTensor", "TensorField", "SparseTensorQuantizationMode"
)
def test_package_folder_modules_import_top_level(tmp_path: Path) -> None:
    theirs = run_fresh(TOPLEVEL_PROBE, tmp_path, hide_real=False)
    ours = run_fresh(TOPLEVEL_PROBE, tmp_path, hide_real=True)
    assert (theirs["aliased"], ours["aliased"]) == (False, True)
    for key in ("names", "utils_names", "backend_mode"):
        assert ours[key] == theirs[key], key
    # the native engine has no SPLAT_LINEAR_INTERPOLATION quantisation mode (not implemented)
    assert ours["modes"] == [m for m in theirs["modes"] if m != "SPLAT_LINEAR_INTERPOLATION"]
    # one module object under both names natively (MinkowskiEngine loads its files twice)
    assert ours["same_class"] is True
    assert len(ours["utils_names"]) == 10
    assert ours["gradcheck"] is True
    assert theirs["gradcheck"] in (True, "ModuleNotFoundError: torch._six")


def test_toplevel_names_are_the_minkowski_folder_modules() -> None:
    """The alias serves top-level exactly the modules MinkowskiEngine 0.5.4's folder holds."""
    import stseg_models._minkowski_alias as hook

    folder = Path(MINK.__file__).parent
    held = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    held |= {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}
    assert held == set(hook.TOPLEVEL)


def test_users_own_utils_module_wins(tmp_path: Path) -> None:
    """Like an appended path entry, the alias never shadows a user's module of the same name."""
    (tmp_path / "utils.py").write_text("MINE = True\n")
    got = run_fresh(
        """
        import json, sys
        sys.path.insert(0, ".")
        from stseg_models.sparse import install_alias
        install_alias()
        import MinkowskiEngine, utils
        print(json.dumps({"mine": getattr(utils, "MINE", False)}))
        """,
        tmp_path,
        hide_real=True,
    )
    assert got == {"mine": True}


@pytest.mark.me_names("SparseTensor")
def test_bare_minkowski_folder_is_not_an_install(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    (bare / "MinkowskiEngine").mkdir(parents=True)
    ours = run_fresh(TOPLEVEL_PROBE, tmp_path, hide_real=True, extra_path=bare)
    assert ours["aliased"] is True
    assert len(ours["warnings"]) == 1 and str(bare / "MinkowskiEngine") in ours["warnings"][0]
    # with the real engine visible, its regular package wins over the bare folder (no warning)
    theirs = run_fresh(TOPLEVEL_PROBE, tmp_path, hide_real=False, extra_path=bare)
    assert (theirs["aliased"], theirs["engine_file"], theirs["warnings"]) == (False, True, [])
