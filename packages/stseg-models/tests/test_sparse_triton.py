"""Triton sparse-convolution kernels, checked on CPU: run by Triton's interpreter, and compiled.

Two child processes run at once (this file run as a script is both):

* ``interpret``, started with ``TRITON_INTERPRET=1`` (Triton reads it once, at import; this process
  may already hold a compiled-mode Triton from another test), runs the kernels and the autograd
  function on every case. The parent builds each kernel map with the engine, the inputs and the
  references (the engine's torch passes, and torch autograd of a sum of dense 0/1 selection
  matrices times features times weights, in float64) and compares.
* ``compile``, in compiled mode, builds both kernels for sm80 / sm90 with Triton's compiler and
  the ptxas in its wheel (no GPU needed): what the interpreter cannot check.

About 25 s of CPU for the two children, 15 s for the rest.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.sparse.conv_function import conv_forward
from stseg_models.sparse.kernel_map import KernelMap
from stseg_models.sparse.triton import (
    enabled_by_env,
    interpreting,
    triton_available,
    use_triton,
)
from stseg_models.sparse.triton.tables import neighbour_table, pair_starts, tables_for
from stseg_models.testing import random_cloud

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(
    not HAS_TRITON, reason="triton is not installed (pip install 'stseg-models[cuda]')"
)
# the first test to ask for the children waits for both (about 30 s on an idle 2-core machine,
# a minute or more beside a CI run): more than the suite's 120 s default allows under load
CHILD_WAIT_S = 280
waits_for_children = pytest.mark.timeout(CHILD_WAIT_S + 20)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# max |error| / max |reference|, the reference in float64 from the same rounded inputs. float32:
# another summation order (measured about 1.5e-7). fp16 / bf16: products are exact and sums float32,
# so the result's own rounding dominates: 2**-11 for fp16 (measured 3.4e-4), 2**-8 for bf16 on a GPU
# (round to nearest), 2**-7 under the interpreter, which truncates float32 -> bf16 (measured 5.4e-3).
TOLERANCE = {"fp32": 1e-5, "fp16": 1e-3, "bf16": 1e-2}
# the ahead-of-time compile check: compute capabilities, dtypes, channels (64 -> 64: wgmma tiles)
COMPILE_TARGETS = ((90, "fp32"), (90, "bf16"), (80, "bf16"))
COMPILE_CHANNELS = (64, 64)
MAP_FIELDS = ("counts", "num_in", "num_out", "identity", "mirror", "in_unique", "out_unique")


# --- maps and references (parent) ---------------------------------------------------------------


def _cloud(n: int, extent: int, channels: int, seed: int) -> ME.SparseTensor:
    coords, feats = random_cloud(n, extent, channels, seed)
    return ME.SparseTensor(feats, coords)


def _engine_map(x: ME.SparseTensor, kernel: int, stride: int, transpose: bool) -> KernelMap:
    """The map the engine's layer of that shape uses on `x` (stride 2: x is the coarse side)."""
    manager, key = x.coordinate_manager, x.coordinate_map_key
    layer = ME.MinkowskiConvolution(1, 1, kernel_size=kernel, stride=stride, dimension=3)
    gen = layer.kernel_generator
    out_key = manager.stride(key, [stride] * 3) if stride > 1 else key
    kmap = manager.kernel_map_for(key, out_key, gen)
    return kmap.transposed() if transpose else kmap


def reference_conv(feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor:
    """out = sum_k S_k @ feats @ weight[k], S_k the dense 0/1 matrix of offset k's pairs (o, i)."""
    out = feats.new_zeros((kmap.num_out, weight.shape[2]))
    for k, (i, o) in enumerate(kmap.pairs()):
        select = feats.new_zeros((kmap.num_out, kmap.num_in))
        select[o, i] = 1.0
        out = out + select @ feats @ weight[k]
    return out


def _case(
    name: str,
    points: int,
    extent: int,
    c_in: int,
    c_out: int,
    kernel: int,
    stride: int,
    dtype: str,
    transpose: bool = False,
    autocast: bool = False,
    pairs_per_split: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    x = _cloud(points, extent, c_in, seed)
    kmap = _engine_map(x, kernel, stride, transpose)
    g = torch.Generator().manual_seed(seed + 1)
    # inputs rounded to the case's dtype up front, so the references see the kernels' operands
    low = DTYPES[dtype]
    feats = torch.randn(kmap.num_in, c_in, generator=g).to(low).float()
    weight = (torch.randn(kmap.kernel_volume, c_in, c_out, generator=g) / c_in**0.5).to(low).float()
    grad_out = torch.randn(kmap.num_out, c_out, generator=g).to(low).float()
    return {
        "name": name,
        "dtype": dtype,
        "autocast": autocast,
        "pairs_per_split": pairs_per_split,
        "kmap": kmap,
        "feats": feats,
        "weight": weight,
        "grad_out": grad_out,
    }


SPECS: dict[str, dict[str, Any]] = {
    # 3x3x3 on one set (identity and mirrored offsets), one row tile and a ragged second one
    "cube3": dict(points=200, extent=7, c_in=20, c_out=33, kernel=3, stride=1, dtype="fp32"),
    "cube3_bf16": dict(points=120, extent=6, c_in=20, c_out=33, kernel=3, stride=1, dtype="bf16"),
    # 30 points (the engine's dictionary-built small map); 130 outputs: two column tiles
    "cube3_small_wide": dict(
        points=30, extent=5, c_in=7, c_out=130, kernel=3, stride=1, dtype="fp32", seed=3
    ),
    # 2x2x2 stride 2: every input row has one pair (in_unique); 40 channels: two K-steps
    "down2": dict(
        points=160, extent=8, c_in=40, c_out=24, kernel=2, stride=2, dtype="fp32", seed=1
    ),
    "down2_fp16": dict(
        points=160, extent=8, c_in=40, c_out=24, kernel=2, stride=2, dtype="fp16", seed=1
    ),
    "down2_bf16_autocast": dict(
        points=160,
        extent=8,
        c_in=40,
        c_out=24,
        kernel=2,
        stride=2,
        dtype="bf16",
        seed=1,
        autocast=True,
    ),
    # its transpose (out_unique), with the weight gradient cut into several splits per offset
    "up2_split": dict(
        points=160,
        extent=8,
        c_in=24,
        c_out=16,
        kernel=2,
        stride=2,
        dtype="fp32",
        seed=2,
        transpose=True,
        pairs_per_split=8,
    ),
    # 3x3x3 stride 2: neither side unique
    "down3": dict(
        points=160, extent=8, c_in=12, c_out=20, kernel=3, stride=2, dtype="fp32", seed=4
    ),
    # 1x1: the dense-matmul shortcut
    "point1": dict(
        points=120, extent=6, c_in=16, c_out=8, kernel=1, stride=1, dtype="fp32", seed=5
    ),
}


@pytest.fixture(scope="module")
def cases() -> dict[str, dict[str, Any]]:
    return {name: _case(name, **spec) for name, spec in SPECS.items()}


def _map_state(kmap: KernelMap) -> dict[str, Any]:
    state = {f: getattr(kmap, f) for f in MAP_FIELDS}
    return {**state, "in_idx": kmap.in_idx, "out_idx": kmap.out_idx}


def _start(mode: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, __file__, mode, *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def _finish(proc: subprocess.Popen[bytes], log: Path) -> None:
    try:
        proc.wait(timeout=CHILD_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, log.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def children(
    cases: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Both children at once (two cores): the interpreter run of every case, and the
    ahead-of-time compilation of the kernels for sm80 / sm90 in compiled mode."""
    tmp = tmp_path_factory.mktemp("triton")
    sent = [
        {**{k: v for k, v in c.items() if k != "kmap"}, "map": _map_state(c["kmap"])}
        for c in cases.values()
    ]
    torch.save(sent, tmp / "cases.pt")
    base = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    base["TRITON_CACHE_DIR"] = str(tmp / "cache")  # a real compilation, not a cached one
    interpret = _start(
        "interpret",
        [str(tmp / "cases.pt"), str(tmp / "results.pt")],
        {**base, "TRITON_INTERPRET": "1", "OMP_NUM_THREADS": "1"},
        tmp / "interpret.log",
    )
    compile_ = _start("compile", [str(tmp / "compiled.json")], base, tmp / "compile.log")
    yield {"tmp": tmp, "interpret": interpret, "compile": compile_}
    for proc in (interpret, compile_):  # a child no test waited for (deselected) ends here
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def results(children: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The kernels' outputs and gradients for every case, computed by the interpreter child."""
    tmp = children["tmp"]
    _finish(children["interpret"], tmp / "interpret.log")
    out: dict[str, dict[str, Any]] = torch.load(tmp / "results.pt", weights_only=True)
    return out


@pytest.fixture(scope="module")
def compiled(children: dict[str, Any]) -> dict[str, Any]:
    """{"arch/dtype/kernel": facts about its cubin} from the compile child."""
    tmp = children["tmp"]
    _finish(children["compile"], tmp / "compile.log")
    facts: dict[str, Any] = json.loads((tmp / "compiled.json").read_text())
    return facts


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    scale = float(want.abs().max())
    return float((got.double() - want).abs().max()) / max(scale, 1e-30)


def _references(case: dict[str, Any]) -> dict[str, torch.Tensor]:
    kmap = case["kmap"]
    feats = case["feats"].double().requires_grad_(True)
    weight = case["weight"].double().requires_grad_(True)
    out = reference_conv(feats, weight, kmap)
    out.backward(case["grad_out"].double())
    assert feats.grad is not None and weight.grad is not None
    return {"out": out.detach(), "grad_feats": feats.grad, "grad_weight": weight.grad}


@needs_triton
@waits_for_children
@pytest.mark.parametrize("name", list(SPECS))
def test_kernels_match_reference(
    name: str, cases: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]]
) -> None:
    case = cases[name]
    got = results[name]
    want = _references(case)
    low, tol = DTYPES[case["dtype"]], TOLERANCE[case["dtype"]]
    # dtype rules of SparseConvolutionFunction: output in the compute dtype, gradients in the
    # inputs' dtypes (float32 under autocast: the inputs stay float32 there)
    assert got["out"].dtype == low
    grad_dtype = torch.float32 if case["autocast"] else low
    assert got["grad_feats"].dtype == grad_dtype
    assert got["grad_weight"].dtype == grad_dtype
    for name in ("out", "grad_feats", "grad_weight"):
        assert got[name].shape == want[name].shape, name
        err = _relative(got[name], want[name])
        assert err < tol, f"{case['name']} {name}: relative error {err:.3g} >= {tol}"
    # the reference is not trivially zero (a kernel writing zeros must fail)
    assert float(want["out"].abs().max()) > 0.1


@needs_triton
@waits_for_children
def test_float32_forward_equals_engine_torch_path(
    cases: dict[str, dict[str, Any]], results: dict[str, dict[str, Any]]
) -> None:
    """The engine's own passes (reduce, small, direct, patch, 1x1) agree with the kernels."""
    for case in cases.values():
        if case["dtype"] != "fp32":
            continue
        engine = conv_forward(case["feats"], case["weight"], case["kmap"])
        err = _relative(results[case["name"]]["out"], engine.double())
        assert err < 1e-5, f"{case['name']}: {err:.3g}"


@needs_triton
@waits_for_children
def test_interpreter_reported_available(results: dict[str, dict[str, Any]]) -> None:
    child = results["_env"]
    assert child["interpreting"] and child["available_cpu"] and child["interpreted_kernels"]
    assert not child["use_triton_cpu"]  # never the engine's path on CPU, interpreter or not


@needs_triton
@waits_for_children
@pytest.mark.parametrize(("arch", "dtype"), COMPILE_TARGETS)
def test_kernels_compile_for_gpus(arch: int, dtype: str, compiled: dict[str, Any]) -> None:
    """Triton's compiler and ptxas build both kernels for the GPU (the interpreter never does):
    half precision on tensor cores (wgmma on sm90, mma on sm80), float32 in IEEE FMAs."""
    for kernel in ("gather_gemm", "weight_grad"):
        facts = compiled[f"{arch}/{dtype}/{kernel}"]
        assert facts["cubin_bytes"] > 1000
        tensor_cores = facts["wgmma"] or facts["mma"]
        assert tensor_cores == (dtype != "fp32"), (arch, dtype, kernel, facts)
        if dtype != "fp32":
            assert facts["wgmma"] == (arch >= 90), (arch, dtype, kernel, facts)


def test_neighbour_tables_match_pair_loop(cases: dict[str, dict[str, Any]]) -> None:
    kmap = cases["cube3"]["kmap"]
    fwd = neighbour_table(kmap.in_idx, kmap.out_idx, kmap.counts, kmap.num_out)
    bwd = neighbour_table(kmap.out_idx, kmap.in_idx, kmap.counts, kmap.num_in)
    want_f = torch.full((kmap.kernel_volume, kmap.num_out), -1, dtype=torch.int32)
    want_b = torch.full((kmap.kernel_volume, kmap.num_in), -1, dtype=torch.int32)
    for k, (i, o) in enumerate(kmap.pairs()):
        for a, b in zip(i.tolist(), o.tolist(), strict=True):
            want_f[k, b], want_b[k, a] = a, b
    assert torch.equal(fwd, want_f) and torch.equal(bwd, want_b)
    assert int((fwd >= 0).sum()) == sum(kmap.counts)
    starts = pair_starts(kmap.counts, torch.device("cpu"))
    assert starts.tolist()[-1] == kmap.in_idx.numel() and starts.tolist()[1] == kmap.counts[0]


def test_tables_cached_per_map_and_dropped_with_it() -> None:
    import gc

    from stseg_models.sparse.triton import tables

    kmap = _engine_map(_cloud(60, 5, 1, seed=9), 3, 1, False)
    first = tables_for(kmap)
    assert tables_for(kmap) is first and first.forward() is first.forward()
    key = id(kmap)
    del kmap, first
    gc.collect()
    assert key not in tables._CACHE


def test_selection_off_on_cpu_and_by_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert enabled_by_env({}) and enabled_by_env({"STSEG_TRITON": "1"})
    for off in ("0", "false", "OFF", " no "):
        assert not enabled_by_env({"STSEG_TRITON": off})
    assert interpreting({"TRITON_INTERPRET": "1"}) and not interpreting({})
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # even so: CPU features never take the kernels
    assert not use_triton(torch.zeros(2, 2))
    assert not use_triton(torch.zeros(2, 2, dtype=torch.float64))
    assert not triton_available("meta")
    monkeypatch.delenv("TRITON_INTERPRET")
    assert not triton_available("cpu")  # compiled Triton has no CPU target


def test_dtype_support_follows_compute_capability(monkeypatch: pytest.MonkeyPatch) -> None:
    from stseg_models.sparse import triton as selection

    cuda0 = torch.device("cuda", 0)
    monkeypatch.setattr(selection, "_capability", lambda index: (7, 5))  # Turing
    assert selection.dtype_supported(cuda0, torch.float16)
    assert selection.dtype_supported(cuda0, torch.float32)
    assert not selection.dtype_supported(cuda0, torch.bfloat16)
    assert not selection.dtype_supported(cuda0, torch.float64)
    monkeypatch.setattr(selection, "_capability", lambda index: (9, 0))  # Hopper
    assert selection.dtype_supported(cuda0, torch.bfloat16)
    monkeypatch.setattr(selection, "_capability", lambda index: (6, 1))  # Pascal
    assert not selection.dtype_supported(cuda0, torch.float32)


def _benchmark_module() -> Any:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "triton_conv.py"
    spec = importlib.util.spec_from_file_location("triton_conv_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_benchmark_refuses_cpu_without_interpret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = _benchmark_module()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.main(["--json", str(tmp_path / "out.json")]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_benchmark_cloud_and_error_measure() -> None:
    bench = _benchmark_module()
    cloud = bench.surface_cloud(500, seed=1)
    assert cloud.shape == (500, 4) and (cloud[:, 0] == 0).all()
    assert len({tuple(r) for r in cloud.tolist()}) == 500
    assert (bench.surface_cloud(500, seed=1) == cloud).all()
    want = torch.tensor([1.0, -4.0])
    assert bench.relative_error(torch.tensor([1.0, -3.0]), want) == pytest.approx(0.25)
    assert bench.relative_error(torch.zeros(2), torch.zeros(2)) == 0.0


# --- the child: runs the kernels under the interpreter -------------------------------------------


@needs_triton
@waits_for_children
def test_engine_layers_take_the_triton_route(results: dict[str, dict[str, Any]]) -> None:
    """With `use_triton` on, MinkowskiConvolution / ...Transpose run the kernels (one forward per
    layer) and give the torch-ops routes' output and gradients."""
    got = results["_engine"]
    assert got["triton_calls"] == 3 and got["calls_after"] == 3  # off: the torch routes only
    assert set(got["errors"]) >= {"out", "grad_in", "0.kernel", "0.bias", "2.kernel"}
    for name, err in got["errors"].items():
        assert err < 1e-5, f"{name}: relative error {err:.3g}"


def _compile_child(outputs: str) -> None:
    assert "TRITON_INTERPRET" not in os.environ
    from stseg_models.sparse.triton.kernels import compile_ahead

    facts = {}
    for arch, dtype in COMPILE_TARGETS:
        for kernel, binary in compile_ahead(arch, DTYPES[dtype], *COMPILE_CHANNELS).items():
            ptx = binary.asm["ptx"]
            facts[f"{arch}/{dtype}/{kernel}"] = {
                "cubin_bytes": len(binary.asm["cubin"]),
                "wgmma": "wgmma.mma_async" in ptx,
                "mma": "mma.sync" in ptx,
                "shared_bytes": binary.metadata.shared,
            }
    Path(outputs).write_text(json.dumps(facts, indent=1))


def _child(inputs: str, outputs: str) -> None:
    assert os.environ.get("TRITON_INTERPRET") == "1"  # set before this process imported Triton
    from stseg_models.sparse.triton import kernels
    from stseg_models.sparse.triton.function import triton_conv

    results: dict[str, Any] = {
        "_env": {
            "interpreting": interpreting(),
            "available_cpu": triton_available("cpu"),
            "use_triton_cpu": use_triton(torch.zeros(2, 2)),
            "interpreted_kernels": kernels.INTERPRETED,
        }
    }
    default_split = kernels.PAIRS_PER_SPLIT
    for case in torch.load(inputs, weights_only=True):
        state = case["map"]
        kmap = KernelMap(state.pop("in_idx"), state.pop("out_idx"), **state)
        kernels.PAIRS_PER_SPLIT = case["pairs_per_split"] or default_split
        low = DTYPES[case["dtype"]]
        dtype = torch.float32 if case["autocast"] else low
        feats = case["feats"].to(dtype).requires_grad_(True)
        weight = case["weight"].to(dtype).requires_grad_(True)
        with torch.autocast("cpu", dtype=low, enabled=case["autocast"]):
            out = triton_conv(feats, weight, kmap)
        out.backward(case["grad_out"].to(out.dtype))
        results[case["name"]] = {
            "out": out.detach(),
            "grad_feats": feats.grad,
            "grad_weight": weight.grad,
        }
    results["_engine"] = _engine_route_check()
    torch.save(results, outputs)


def _engine_route_check() -> dict[str, Any]:
    """Three engine layers (3x3x3 with bias, 2x2x2 stride 2, its transpose) through the public API,
    once with the Triton route forced on (the interpreter stands in for CUDA) and once on the
    torch-ops routes: outputs and every gradient, and how often the Triton forward ran."""
    import stseg_models.sparse.conv_function as conv_function
    from stseg_models.sparse.triton import function

    torch.manual_seed(0)
    points = torch.unique(torch.randint(0, 6, (150, 3)), dim=0)
    coords = torch.cat([torch.zeros(len(points), 1, dtype=points.dtype), points], 1).int()
    feats = torch.randn(len(coords), 3)
    net = torch.nn.Sequential(
        ME.MinkowskiConvolution(3, 8, kernel_size=3, bias=True, dimension=3),
        ME.MinkowskiConvolution(8, 16, kernel_size=2, stride=2, dimension=3),
        ME.MinkowskiConvolutionTranspose(16, 8, kernel_size=2, stride=2, dimension=3),
    )
    calls = {"triton": 0}
    forward = function.triton_conv_forward

    def counted(*args: Any) -> torch.Tensor:
        calls["triton"] += 1
        return forward(*args)

    function.triton_conv_forward = counted  # type: ignore[assignment]
    runs = {}
    for forced in (True, False):
        conv_function.use_triton = lambda _f, forced=forced: forced  # type: ignore[assignment]
        net.zero_grad(set_to_none=True)
        x = feats.clone().requires_grad_(True)
        out = net(ME.SparseTensor(x, coordinates=coords))
        out.F.backward(torch.ones_like(out.F))
        runs[forced] = {"out": out.F.detach(), "grad_in": x.grad}
        runs[forced].update({n: p.grad.clone() for n, p in net.named_parameters()})
        if forced:
            triton_calls = calls["triton"]
    errors = {name: _relative(runs[True][name], runs[False][name].double()) for name in runs[True]}
    return {"triton_calls": triton_calls, "calls_after": calls["triton"], "errors": errors}


if __name__ == "__main__":
    if sys.argv[1] == "compile":
        _compile_child(sys.argv[2])
    else:
        _child(sys.argv[2], sys.argv[3])
