"""The opt-in ``import MinkowskiEngine`` alias: in-process rules and fresh interpreters.

In-process tests hide any real MinkowskiEngine (the compat venv has one) by patching the finder's
"real installation" probe; subprocess tests run the shipped ``.pth`` start-up hook through
`site.addsitedir` -- what `site` does for site-packages at interpreter start -- and check both
branches of "never shadow a real installation" with a fake MinkowskiEngine package on the path.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

import stseg_models._minkowski_alias as hook
import stseg_models.sparse as S
from stseg_models.sparse.alias import install_alias, real_minkowski_installed, uninstall_alias

PACKAGE = Path(__file__).resolve().parents[1]
PTH = PACKAGE / "src" / "stseg_minkowski_alias.pth"


@pytest.fixture
def alias(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(hook, "real_minkowski_spec", lambda: None)
    saved = {
        n: m
        for n, m in sys.modules.items()
        if n == "MinkowskiEngine" or n.startswith("MinkowskiEngine.")
    }
    for name in saved:
        del sys.modules[name]
    assert install_alias() is True
    yield
    uninstall_alias()
    sys.modules.update(saved)


def test_alias_resolves_package_and_submodules(alias: None) -> None:
    import MinkowskiEngine as ME
    import MinkowskiEngine.MinkowskiFunctional as MEF
    import MinkowskiEngine.utils
    from MinkowskiEngine.MinkowskiCommon import MinkowskiModuleBase, convert_to_int_list
    from MinkowskiEngine.MinkowskiOps import cat
    from MinkowskiEngine.utils import sparse_quantize
    from MinkowskiEngine.utils.collation import sparse_collate

    assert ME.SparseTensor is S.SparseTensor and ME.utils is S.utils
    assert MinkowskiEngine.utils is S.utils and sparse_quantize is S.utils.sparse_quantize
    assert sparse_collate is S.utils.sparse_collate and cat is S.cat
    assert (
        MEF is S.MinkowskiFunctional if hasattr(S, "MinkowskiFunctional") else hasattr(MEF, "relu")
    )
    assert MinkowskiModuleBase is S.MinkowskiModuleBase and convert_to_int_list(2, 3) == [2, 2, 2]
    assert sorted(ME.__all__) == sorted(S.__all__)
    # the native package keeps its own identity: one module object, its own __spec__
    assert S.utils.__spec__.name == "stseg_models.sparse.utils"
    assert importlib.util.find_spec("stseg_models.sparse").name == "stseg_models.sparse"


# MinkowskiEngine 0.5.4's public module-level functions and classes, per submodule (from its source)
ME_SUBMODULE_NAMES = {
    "MinkowskiBroadcast": ["MinkowskiBroadcastFunction", "MinkowskiBroadcastBase", "MinkowskiBroadcastAddition", "MinkowskiBroadcastMultiplication", "MinkowskiBroadcast", "MinkowskiBroadcastConcatenation"],
    "MinkowskiChannelwiseConvolution": ["MinkowskiChannelwiseConvolution"],
    "MinkowskiCommon": ["convert_to_int_list", "convert_to_int_tensor", "prep_args", "get_postfix", "MinkowskiModuleBase"],
    "MinkowskiConvolution": ["MinkowskiConvolutionFunction", "MinkowskiConvolutionTransposeFunction", "MinkowskiConvolutionBase", "MinkowskiConvolution", "MinkowskiConvolutionTranspose", "MinkowskiGenerativeConvolutionTranspose"],
    "MinkowskiCoordinateManager": ["set_coordinate_map_type", "set_gpu_allocator", "set_memory_manager_backend", "CoordsManager", "CoordinateManager"],
    "MinkowskiFunctional": ["threshold", "relu", "hardtanh", "hardswish", "relu6", "elu", "selu", "celu", "leaky_relu", "prelu", "rrelu", "glu", "gelu", "logsigmoid", "hardshrink", "tanhshrink", "softsign", "softplus", "softmin", "softmax", "softshrink", "gumbel_softmax", "log_softmax", "tanh", "sigmoid", "hardsigmoid", "silu", "batch_norm", "normalize", "linear", "dropout", "alpha_dropout", "binary_cross_entropy", "binary_cross_entropy_with_logits", "poisson_nll_loss", "cross_entropy", "hinge_embedding_loss", "kl_div", "l1_loss", "mse_loss", "multilabel_margin_loss", "multilabel_soft_margin_loss", "multi_margin_loss", "nll_loss", "smooth_l1_loss", "soft_margin_loss"],
    "MinkowskiInterpolation": ["MinkowskiInterpolationFunction", "MinkowskiInterpolation"],
    "MinkowskiKernelGenerator": ["get_kernel_volume", "convert_region_type", "KernelGenerator", "KernelRegion", "save_ctx"],
    "MinkowskiNetwork": ["MinkowskiNetwork"],
    "MinkowskiNonlinearity": ["MinkowskiNonlinearityBase", "MinkowskiELU", "MinkowskiReLU", "MinkowskiSoftmax", "MinkowskiDropout", "MinkowskiSinusoidal"],
    "MinkowskiNormalization": ["MinkowskiBatchNorm", "MinkowskiSyncBatchNorm", "MinkowskiInstanceNormFunction", "MinkowskiStableInstanceNorm", "MinkowskiInstanceNorm"],
    "MinkowskiOps": ["MinkowskiLinear", "cat", "mean", "var", "dense_coordinates", "to_sparse", "to_sparse_all", "MinkowskiToSparseTensor", "MinkowskiToDenseTensor", "MinkowskiToFeature", "MinkowskiStackCat", "MinkowskiStackSum", "MinkowskiStackMean", "MinkowskiStackVar"],
    "MinkowskiPooling": ["MinkowskiLocalPoolingFunction", "MinkowskiPoolingBase", "MinkowskiAvgPooling", "MinkowskiSumPooling", "MinkowskiMaxPooling", "MinkowskiLocalPoolingTransposeFunction", "MinkowskiPoolingTranspose", "MinkowskiGlobalPoolingFunction", "MinkowskiGlobalPooling", "MinkowskiGlobalSumPooling", "MinkowskiGlobalAvgPooling", "MinkowskiGlobalMaxPooling", "MinkowskiDirectMaxPoolingFunction"],
    "MinkowskiPruning": ["MinkowskiPruningFunction", "MinkowskiPruning"],
    "MinkowskiSparseTensor": ["SparseTensor"],
    "MinkowskiTensor": ["SparseTensorOperationMode", "SparseTensorQuantizationMode", "set_sparse_tensor_operation_mode", "sparse_tensor_operation_mode", "global_coordinate_manager", "set_global_coordinate_manager", "clear_global_coordinate_manager"],
    "MinkowskiTensorField": ["TensorField"],
    "MinkowskiUnion": ["MinkowskiUnionFunction", "MinkowskiUnion"],
    "diagnostics": ["parse_nvidia_smi", "print_diagnostics"],
    "sparse_matrix_functions": ["spmm", "spmm_average", "MinkowskiSPMMFunction", "MinkowskiSPMMAverageFunction"],
}  # fmt: skip


@pytest.mark.parametrize("submodule", sorted(ME_SUBMODULE_NAMES))
def test_minkowski_submodules_resolve_their_names(alias: None, submodule: str) -> None:
    module = importlib.import_module(f"MinkowskiEngine.{submodule}")
    missing = [n for n in ME_SUBMODULE_NAMES[submodule] if not hasattr(module, n)]
    assert not missing
    from_import = {}
    exec(
        f"from MinkowskiEngine.{submodule} import {', '.join(ME_SUBMODULE_NAMES[submodule])}",
        from_import,
    )
    assert all(n in from_import for n in ME_SUBMODULE_NAMES[submodule])


def test_submodule_import_binds_on_the_alias_not_on_the_engine(alias: None) -> None:
    import MinkowskiEngine as ME
    import MinkowskiEngine.MinkowskiConvolution as conv_module

    assert conv_module.MinkowskiConvolution is S.MinkowskiConvolution
    # Python binds the submodule on its parent, as with the real MinkowskiEngine; the native
    # package must not be touched by that
    assert S.MinkowskiConvolution is conv_module.MinkowskiConvolution
    assert isinstance(S.MinkowskiConvolution, type)
    assert ME.__version__ == S.__version__


def test_resnet_block_module_resolves(alias: None) -> None:
    if importlib.util.find_spec("stseg_models.sparse.modules") is None:
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module("MinkowskiEngine.modules.resnet_block")
        return
    block = importlib.import_module("MinkowskiEngine.modules.resnet_block")
    assert block is importlib.import_module("stseg_models.sparse.modules.resnet_block")


@pytest.mark.parametrize(
    "name",
    [
        "MinkowskiEngine.tensor",
        "MinkowskiEngine.hashing",
        "MinkowskiEngine.utils.nothing",
        "MinkowskiEngine.MinkowskiOps.x",
    ],
)
def test_names_minkowski_does_not_have_are_not_aliased(alias: None, name: str) -> None:
    import MinkowskiEngine  # noqa: F401

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(name)
    assert name not in sys.modules


def test_uninstall_forgets_the_alias(alias: None) -> None:
    import MinkowskiEngine  # noqa: F401

    uninstall_alias()
    assert "MinkowskiEngine" not in sys.modules
    assert not any(isinstance(f, hook.MinkowskiAliasFinder) for f in sys.meta_path)
    assert install_alias() is True  # and again (the fixture uninstalls at the end)


def test_env_switch_values() -> None:
    for value, on in [
        ("1", True),
        ("true", True),
        ("ON", True),
        ("yes", True),
        ("0", False),
        ("", False),
        ("no", False),
    ]:
        assert hook.env_requested({hook.ENV_VAR: value}) is on
    assert hook.env_requested({}) is False


def test_wheel_ships_the_start_up_hook() -> None:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())
    packages = project["tool"]["poetry"]["packages"]
    assert {"include": "stseg_minkowski_alias.pth", "from": "src"} in packages
    lines = [ln for ln in PTH.read_text().splitlines() if ln.strip()]
    # site executes a .pth line only when it starts with "import"; one line, no torch
    assert len(lines) == 1 and lines[0].startswith("import ") and "torch" not in lines[0]


# -- fresh interpreters -------------------------------------------------------------------------


def run_python(
    code: str, tmp_path: Path, switch: str | None, extra_path: Path | None = None
) -> str:
    site_dir = tmp_path / "site"
    site_dir.mkdir(exist_ok=True)
    shutil.copy(PTH, site_dir / PTH.name)
    env = {k: v for k, v in os.environ.items() if k != hook.ENV_VAR}
    env["OMP_NUM_THREADS"] = "1"
    if switch is not None:
        env[hook.ENV_VAR] = switch
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(extra_path), env.get("PYTHONPATH", "")])
    prelude = f"import site, sys\nsite.addsitedir({str(site_dir)!r})\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_hook_on_aliases_unmodified_code(tmp_path: Path) -> None:
    real = real_minkowski_installed()
    out = run_python(
        """
        hooked = "stseg_models._minkowski_alias" in sys.modules
        cheap = "torch" not in sys.modules
        import numpy as np
        import MinkowskiEngine as ME
        from MinkowskiEngine.utils import sparse_quantize
        import stseg_models.sparse as S
        coords, index = sparse_quantize(np.array([[0.2, 0.1], [0.4, 0.3], [1.5, 0.0]]), return_index=True)
        print(hooked, cheap, ME.SparseTensor is S.SparseTensor, coords.tolist(), index.tolist())
        """,
        tmp_path,
        switch="1",
    )
    if real:  # never shadow: the real engine was imported
        assert out.split()[2] == "False"
    else:
        assert out.strip() == "True True True [[0, 0], [1, 0]] [0, 2]"


def test_hook_off_changes_nothing(tmp_path: Path) -> None:
    real = real_minkowski_installed()
    out = run_python(
        """
        print("stseg_models" in sys.modules, "torch" in sys.modules)
        import collections, collections.abc  # what a user of a real MinkowskiEngine 0.5.4 does
        collections.Sequence = collections.abc.Sequence
        try:
            import MinkowskiEngine
            print("imported", type(MinkowskiEngine).__name__)
        except ImportError:
            print("ImportError")
        """,
        tmp_path,
        switch="0",
    )
    lines = out.split("\n")
    assert lines[0] == "False False"  # the hook imported nothing
    assert lines[1] == ("imported module" if real else "ImportError")


def test_hook_never_shadows_a_real_minkowski_engine(tmp_path: Path) -> None:
    fake = tmp_path / "fake" / "MinkowskiEngine"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("FAKE_REAL_ENGINE = True\n")
    (fake / "utils.py").write_text("FAKE_UTILS = True\n")
    out = run_python(
        """
        import MinkowskiEngine as ME, MinkowskiEngine.utils
        import stseg_models.sparse as S
        print(getattr(ME, "FAKE_REAL_ENGINE", False), getattr(ME.utils, "FAKE_UTILS", False), S.install_alias())
        """,
        tmp_path,
        switch="1",
        extra_path=tmp_path / "fake",
    )
    assert out.strip() == "True True False"


def test_runner_runs_a_script_through_the_alias(tmp_path: Path) -> None:
    if real_minkowski_installed():
        expected = "real"
    else:
        expected = "native"
    script = tmp_path / "user_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            import MinkowskiEngine as ME
            print("native" if ME.__version__.endswith("+stseg") else "real", sys.argv[1:], __name__)
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != hook.ENV_VAR}
    done = subprocess.run(
        [sys.executable, "-m", "stseg_models.sparse.alias", str(script), "--flag", "x"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{expected} ['--flag', 'x'] __main__"
