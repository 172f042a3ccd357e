"""Run MinkowskiEngine's example modules against an engine of our choice (native or the real one).

The examples of MinkowskiEngine 0.5.4 (GitHub tag v0.5.4, ``examples/``) import each other as
``examples.<name>``, import ``MinkowskiEngine`` (and ``MinkowskiEngine.modules.resnet_block``,
``MinkowskiEngine.MinkowskiFunctional``), and some of them download data or weights when their
module is imported. This module:

* lays out a scratch folder where ``examples`` (and, when present beside it, ``tests``) link to the
  given checkout, and where the files those import-time guards look for already exist, so nothing
  is downloaded (``urllib.request.urlretrieve`` refuses while an example is imported);
* stubs the optional third-party modules that the examples import at module level but that the
  networks do not use (open3d, sklearn), when they are not installed;
* swaps the ``MinkowskiEngine`` entries of ``sys.modules`` for one engine while an example is
  imported and run, so the example's own source is used unchanged with only the engine replaced;
* runs a network forward and backward and compares two runs (rows matched by coordinate).
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
import tempfile
import types
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

ENGINE_PREFIX = "MinkowskiEngine"
# MinkowskiEngine submodules the examples import by name; each maps to the native module holding
# the same names (module path relative to stseg_models.sparse), or None for "the package itself".
NATIVE_SUBMODULES = {
    "utils": "utils",
    "modules": "modules",
    "modules.resnet_block": "modules.resnet_block",
    "modules.senet_block": "modules.senet_block",
    "MinkowskiFunctional": "functional",
    "MinkowskiOps": "ops",
}
SCRATCH_FILES = ("1.ply", "weights.pth")  # indoor/resnet/tests.python.common download these
SCRATCH_DIRS = ("ModelNet40", "modelnet40_ply_hdf5_2048")  # reconstruction/completion/vae/pointnet
OPTIONAL_MODULES = ("open3d", "sklearn", "sklearn.metrics", "h5py")


def _is_swapped(name: str, example_roots: tuple[str, ...]) -> bool:
    return (
        name == ENGINE_PREFIX
        or name.startswith(ENGINE_PREFIX + ".")
        or any(name == r or name.startswith(r + ".") for r in example_roots)
    )


def native_engine_modules() -> dict[str, types.ModuleType]:
    """``sys.modules`` entries that make ``import MinkowskiEngine[.X]`` resolve to the native engine."""
    import stseg_models.sparse as native

    mods: dict[str, types.ModuleType] = {ENGINE_PREFIX: native}
    for me_name, ours in NATIVE_SUBMODULES.items():
        attr = getattr(native, me_name.split(".")[0], None)
        module: types.ModuleType | None = None
        if "." not in me_name and isinstance(attr, types.ModuleType):
            module = attr
        else:
            with contextlib.suppress(ImportError):
                module = importlib.import_module(f"stseg_models.sparse.{ours}")
        if module is not None:
            mods[f"{ENGINE_PREFIX}.{me_name}"] = module
    return mods


def real_engine_modules() -> dict[str, types.ModuleType]:
    """The real MinkowskiEngine's ``sys.modules`` entries (imports it, with the collections shim)."""
    from stseg_models.sparse.backend import import_minkowski

    current = sys.modules.get(ENGINE_PREFIX)
    if current is not None and getattr(current, "BACKEND", "") == "native":
        raise RuntimeError("MinkowskiEngine is aliased to the native engine in this process")
    import_minkowski()
    for sub in NATIVE_SUBMODULES:
        with contextlib.suppress(ImportError):
            importlib.import_module(f"{ENGINE_PREFIX}.{sub}")
    return {k: v for k, v in sys.modules.items() if _is_swapped(k, ())}


class _Stub(types.ModuleType):
    """Stand-in for an optional module an example imports but the networks never use."""

    __version__ = "0.9.0"  # reconstruction/completion assert open3d >= 0.8 at import time

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(f"{self.__name__}.{name} is a stub here (not installed)")


@dataclass
class Sandbox:
    """Scratch folder holding links to the examples checkout; the place examples are imported from."""

    examples_dir: Path
    root: Path = field(init=False)
    stubs: list[str] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.examples_dir = self.examples_dir.resolve()
        if not (self.examples_dir / "minkunet.py").is_file():
            raise FileNotFoundError(f"{self.examples_dir} does not hold MinkowskiEngine's examples")
        self._tmp = tempfile.TemporaryDirectory(prefix="me-examples-")
        self.root = Path(self._tmp.name)
        (self.root / "examples").symlink_to(self.examples_dir, target_is_directory=True)
        tests = self.examples_dir.parent / "tests"
        if (tests / "python" / "common.py").is_file():
            (self.root / "tests").symlink_to(tests, target_is_directory=True)
        for name in SCRATCH_FILES:
            (self.root / name).write_bytes(b"")
        for name in SCRATCH_DIRS:
            (self.root / name).mkdir()
        for name in OPTIONAL_MODULES:
            if name not in sys.modules and importlib.util.find_spec(name.split(".")[0]) is None:
                sys.modules[name] = _Stub(name)
                self.stubs.append(name)

    def close(self) -> None:
        for name in self.stubs:
            sys.modules.pop(name, None)
        self._tmp.cleanup()

    @contextlib.contextmanager
    def engine(self, modules: dict[str, types.ModuleType] | None) -> Iterator[None]:
        """Within: ``MinkowskiEngine`` is `modules` (None: the native engine through
        `stseg_models.sparse.install_alias`, what users do); ``examples.*``/``tests.*`` import afresh.
        """
        roots = ("examples", "tests")
        saved = {k: v for k, v in sys.modules.items() if _is_swapped(k, roots)}
        for k in saved:
            del sys.modules[k]
        if modules is None:
            from stseg_models.sparse import install_alias

            if not install_alias():
                raise RuntimeError("install_alias() refused: a real MinkowskiEngine is installed")
        else:
            sys.modules.update(modules)
        old_cwd, old_path = os.getcwd(), list(sys.path)
        old_retrieve = urllib.request.urlretrieve
        sys.path.insert(0, str(self.root))
        os.chdir(self.root)

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(f"download refused while running examples: {args[:1]}")

        urllib.request.urlretrieve = refuse  # type: ignore[assignment]
        try:
            yield
        finally:
            if modules is None:
                from stseg_models.sparse import uninstall_alias

                uninstall_alias()
            urllib.request.urlretrieve = old_retrieve
            os.chdir(old_cwd)
            sys.path[:] = old_path
            for k in [k for k in sys.modules if _is_swapped(k, roots)]:
                del sys.modules[k]
            sys.modules.update(saved)


def import_example(name: str) -> types.ModuleType:
    """Import ``examples.<name>`` (call inside `Sandbox.engine`)."""
    return importlib.import_module(f"examples.{name}")


# --- running and comparing -------------------------------------------------------------------


def probe(coords: torch.Tensor | None, rows: int, channels: int) -> torch.Tensor:
    """Fixed loss weights [rows, channels] that depend on each row's coordinate, not its position.

    Two engines may order the rows of the same output differently; weighting each row by a
    function of its coordinate makes the loss (and so every gradient) independent of row order.
    """
    if coords is None:  # dense output: rows are batch items, in the same order in both engines
        coords = torch.arange(rows, dtype=torch.float64)[:, None]
    c = coords.to(torch.float64)
    g = torch.Generator().manual_seed(1000 * c.shape[1] + channels)
    a = torch.randn(c.shape[1], channels, generator=g, dtype=torch.float64) * 0.37
    b = torch.randn(channels, generator=g, dtype=torch.float64)
    return torch.sin(c @ a + b)


def as_pair(value: Any) -> tuple[torch.Tensor | None, torch.Tensor]:
    """(coordinates or None, features) of a SparseTensor, TensorField or plain tensor."""
    if isinstance(value, torch.Tensor):
        return None, value
    return value.C, value.F


@dataclass
class Run:
    """One engine's forward + backward of one network."""

    outputs: dict[str, tuple[torch.Tensor | None, torch.Tensor]]  # detached, coords on CPU
    strides: dict[str, list[int]]
    grads: dict[str, torch.Tensor | None]  # "input:<name>" and "param:<name>"
    loss: float
    seconds: float


def forward_backward(
    net: torch.nn.Module, outputs: dict[str, Any], leaves: dict[str, torch.Tensor], seconds: float
) -> Run:
    """Backpropagate the probe loss over every output; collect outputs and gradients."""
    import time

    start = time.perf_counter()
    loss = torch.zeros((), dtype=torch.float64)
    pairs, strides = {}, {}
    for name, value in outputs.items():
        coords, feats = as_pair(value)
        if feats.is_floating_point() and feats.requires_grad:
            weights = probe(coords, feats.shape[0], feats.shape[1] if feats.dim() > 1 else 1)
            loss = loss + (feats.double().reshape(len(feats), -1) * weights).mean()
        pairs[name] = (None if coords is None else coords.detach().cpu(), feats.detach().cpu())
        if hasattr(value, "tensor_stride"):
            strides[name] = list(value.tensor_stride)
    loss.backward()
    grads: dict[str, torch.Tensor | None] = {f"input:{k}": v.grad for k, v in leaves.items()}
    for name, p in net.named_parameters():
        grads[f"param:{name}"] = None if p.grad is None else p.grad.detach().clone()
    return Run(pairs, strides, grads, float(loss), seconds + time.perf_counter() - start)


def check_run(run: Run) -> list[str]:
    """Problems of a single run: non-finite values, missing or all-zero gradients."""
    problems = []
    for name, (_, feats) in run.outputs.items():
        if feats.is_floating_point() and not torch.isfinite(feats).all():
            problems.append(f"{name}: non-finite output")
        if feats.numel() == 0:
            problems.append(f"{name}: empty output")
    if not math.isfinite(run.loss):
        problems.append("loss not finite")
    for name, g in run.grads.items():
        if g is None:
            problems.append(f"{name}: no gradient")
        elif not torch.isfinite(g).all():
            problems.append(f"{name}: non-finite gradient")
        elif not g.abs().sum() > 0:
            problems.append(f"{name}: zero gradient")
    return problems


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (0 for empty tensors)."""
    if b.numel() == 0:
        return 0.0
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-30))


def _align(native: torch.Tensor, ref: torch.Tensor) -> torch.Tensor | None:
    """Row of `ref` holding each row of `native` (None when the coordinate sets differ)."""
    table = {tuple(r): i for i, r in enumerate(ref.tolist())}
    if len(table) != len(ref) or len(native) != len(ref):
        return None
    rows = [table.get(tuple(r)) for r in native.tolist()]
    if any(r is None for r in rows):
        return None
    return torch.tensor(rows, dtype=torch.long)


@dataclass
class Comparison:
    output_rel: float = 0.0
    grad_rel: float = 0.0
    worst_output: str = ""
    worst_grad: str = ""
    problems: list[str] = field(default_factory=list)
    # gradients that are zero up to rounding in the reference (see `zero_gradient_floor`)
    rounding_zero: list[str] = field(default_factory=list)


def zero_gradient_floor(grads: dict[str, torch.Tensor | None]) -> float:
    """sqrt(eps) x the largest reference gradient: below it a gradient is zero up to rounding.

    Some gradients vanish in exact arithmetic (the bias of a layer followed by batch norm in
    training mode: the norm subtracts the mean, so d loss / d bias = 0); both engines then return
    rounding noise (~1e-16 x the gradient scale in float64), and max |a - b| / max |b| of two noises
    is about 1 whatever the engines do. Such gradients are compared relative to this floor instead.
    """
    present = [g for g in grads.values() if g is not None and g.numel()]
    if not present:
        return 0.0
    scale = max(float(g.abs().max()) for g in present)
    return math.sqrt(torch.finfo(present[0].dtype).eps) * scale


def compare_runs(native: Run, ref: Run) -> Comparison:
    """Outputs (rows matched by coordinate, coordinate sets compared), strides and gradients."""
    result = Comparison()
    for name, (nc, nf) in native.outputs.items():
        if name not in ref.outputs:
            result.problems.append(f"{name}: missing in reference")
            continue
        rc, rf = ref.outputs[name]
        if (
            name in native.strides
            and name in ref.strides
            and native.strides[name] != ref.strides[name]
        ):
            result.problems.append(
                f"{name}: stride {native.strides.get(name)} vs {ref.strides.get(name)}"
            )
        if nc is not None and rc is not None:
            rows = _align(nc, rc)
            if rows is None:
                ns, rs = {tuple(r) for r in nc.tolist()}, {tuple(r) for r in rc.tolist()}
                result.problems.append(
                    f"{name}: coordinate sets differ ({len(ns)} vs {len(rs)} rows, "
                    f"{len(ns - rs)} only native, {len(rs - ns)} only reference)"
                )
                continue
            rf = rf[rows]
        if nf.shape != rf.shape:
            result.problems.append(f"{name}: shape {tuple(nf.shape)} vs {tuple(rf.shape)}")
            continue
        if nf.is_floating_point():
            rel = rel_diff(nf, rf)
            if rel >= result.output_rel:
                result.output_rel, result.worst_output = rel, name
        elif not torch.equal(nf, rf):
            result.problems.append(f"{name}: values differ")
    floor = zero_gradient_floor(ref.grads)
    for name, g in native.grads.items():
        r = ref.grads.get(name)
        if g is None or r is None:
            if (g is None) != (r is None):
                result.problems.append(f"{name}: gradient only in one engine")
            continue
        if g.shape != r.shape:
            result.problems.append(f"{name}: gradient shape {tuple(g.shape)} vs {tuple(r.shape)}")
            continue
        if r.numel() and float(r.abs().max()) < floor:
            result.rounding_zero.append(name)
            rel = float((g.double() - r.double()).abs().max()) / floor
        else:
            rel = rel_diff(g, r)
        if rel >= result.grad_rel:
            result.grad_rel, result.worst_grad = rel, name
    return result


# --- MinkowskiEngine 0.5.4's slice of a strided tensor ------------------------------------------


@contextlib.contextmanager
def fixed_minkowski_strided_slice(me: types.ModuleType) -> Iterator[None]:
    """Within: MinkowskiEngine's ``TensorField.inverse_mapping`` maps points to strided voxels right.

    For a sparse key the field was not quantised to (e.g. ``pooled.slice(field)`` at tensor stride
    2), MinkowskiEngine 0.5.4 composes the field's stride-1 map with ``stride_map(stride-1 key,
    key)``, but indexes the *out* half of those (in, out) row pairs by the stride-1 row, as if the
    *in* half were 0..N-1; the pairs come in hash-table order, so points get the features of other
    voxels (upstream issue NVIDIA/MinkowskiEngine#513, still so on its master). The native engine
    gives every point its own voxel. This patch composes the pairs properly (out[in] = pair out),
    so what else a network does can be compared; every other path is MinkowskiEngine's own.
    """
    field_cls = me.TensorField
    original = field_cls.inverse_mapping

    def inverse_mapping(self: Any, sparse_tensor_map_key: Any) -> torch.Tensor:
        manager = self.coordinate_manager
        field_key = self.coordinate_field_map_key
        if sparse_tensor_map_key in self._inverse_mapping or manager.exists_field_to_sparse(
            field_key, sparse_tensor_map_key
        ):
            return original(self, sparse_tensor_map_key)
        ones = [
            k
            for k in manager.field_to_sparse_keys(field_key)
            if math.prod(k.get_tensor_stride()) == 1
        ]
        if not ones:  # MinkowskiEngine's other branch (no stride-1 set yet): left as it is
            return original(self, sparse_tensor_map_key)
        one_key = ones[-1]  # MinkowskiEngine keeps the last stride-1 key it meets
        field_map = original(self, one_key).long()
        pair_in, pair_out = manager.stride_map(one_key, sparse_tensor_map_key)
        by_row = torch.full((len(pair_in),), -1, dtype=torch.long, device=pair_in.device)
        by_row[pair_in.long()] = pair_out.long()
        self._inverse_mapping[sparse_tensor_map_key] = by_row[field_map]
        return self._inverse_mapping[sparse_tensor_map_key]

    field_cls.inverse_mapping = inverse_mapping
    try:
        yield
    finally:
        field_cls.inverse_mapping = original
