"""Run MinkowskiEngine 0.5.4's own examples on the native engine (and compare with MinkowskiEngine).

    python tools/run_minkowski_examples.py EXAMPLES_DIR [--compare [--fix-minkowski-slice]] [--double]
        [--only SUBSTR ...] [--json OUT]

EXAMPLES_DIR is the ``examples/`` folder of a checkout of MinkowskiEngine's GitHub tag v0.5.4 (the
PyPI source distribution does not ship it); its sibling ``tests/python/common.py`` is used by the
2D examples when present. Each example module is imported from that folder unchanged, with only
``MinkowskiEngine`` resolved to the native engine; its network is built, run forward and backward
on random data of the example's input shape (no dataset, nothing downloaded), and checked for
finite outputs and non-zero gradients of every input and parameter. With ``--compare`` (needs the
real MinkowskiEngine: the ``compat`` nox environment) the same example module is imported a second
time against MinkowskiEngine, the network gets the native network's weights, runs on the same
input, and the table reports the largest relative differences (max |a - b| / max |b|) of the
outputs (rows matched by coordinate, coordinate sets compared) and of the gradients (a gradient
that is zero up to rounding in MinkowskiEngine, e.g. a bias followed by batch norm, is measured
against sqrt(eps) x the largest gradient instead; the notes name them). ``--fix-minkowski-slice``
runs MinkowskiEngine with its strided ``slice`` bug patched (`fixed_minkowski_strided_slice`), so
networks that slice strided tensors (classification's MinkowskiFCNN) can be compared at all.
Exits 1 when any run fails or a comparison exceeds ``--tol``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import json
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from examples_cases import FUNCTION_CASES, NETWORK_CASES, FunctionCase, NetworkCase
from examples_harness import (
    Run,
    Sandbox,
    check_run,
    compare_runs,
    fixed_minkowski_strided_slice,
    forward_backward,
    import_example,
    native_engine_modules,
    real_engine_modules,
)

from stseg_models.sparse.alias import real_minkowski_installed


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:110] if text else ''}"


def run_functions(
    sandbox: Sandbox, case: FunctionCase, modules: dict[str, ModuleType] | None
) -> list[str]:
    """Outcome of importing the example and calling each demo function ("ok" or the error)."""
    with sandbox.engine(modules):
        try:
            mod = import_example(case.module)
        except Exception as exc:  # an example that cannot even be imported
            return [f"import: {_error(exc)}"]
        outcomes = []
        for name in case.functions:
            try:
                getattr(mod, name)()
                outcomes.append(f"{name}: ok")
            except Exception as exc:  # record, do not stop: the next function is independent
                outcomes.append(f"{name}: {_error(exc)}")
        return outcomes


def _train_without_dropout(net: torch.nn.Module) -> None:
    net.train()
    for m in net.modules():  # dropout masks would differ between engines; batch norm stays in train
        if "Dropout" in type(m).__name__:
            m.eval()


def run_network(
    sandbox: Sandbox,
    case: NetworkCase,
    modules: dict[str, ModuleType] | None,
    data: dict[str, Any],
    state: dict[str, torch.Tensor] | None,
) -> tuple[Run, dict[str, torch.Tensor], str]:
    """Import, build (weights from `state` when given), forward, backward; returns the run."""
    with sandbox.engine(modules):
        mod = import_example(case.module)
        me = importlib.import_module("MinkowskiEngine")
        torch.manual_seed(0)
        net = case.build(mod).to(torch.get_default_dtype())  # ME makes float32 kernels
        if state is not None:
            net.load_state_dict(state)
        _train_without_dropout(net)
        if case.top_eval:
            net.training = False  # this module only; see NetworkCase.top_eval
        captured: dict[str, Any] = {}

        def keep_coords(module: torch.nn.Module, args: tuple[Any, ...], out: Any) -> None:
            captured["to_feature_coords"] = args[0].C

        for m in net.modules():
            if type(m).__name__ == "MinkowskiToFeature":
                m.register_forward_hook(keep_coords)
        # a copy: examples edit their inputs in place (indoor's normalize_color, create_input_batch)
        args, leaves = case.inputs(me, mod, copy.deepcopy(data))
        start = time.perf_counter()
        out = case.run(net, args) if case.run is not None else net(*args)
        named = case.outputs(out, captured)
        run = forward_backward(net, named, leaves, time.perf_counter() - start)
        voxels = sum(len(v[1]) for v in run.outputs.values())
        return (
            run,
            {k: v.detach().clone() for k, v in net.state_dict().items()},
            f"{voxels} out rows",
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("examples_dir", type=Path)
    parser.add_argument(
        "--compare", action="store_true", help="also run MinkowskiEngine and compare"
    )
    parser.add_argument(
        "--only", nargs="*", default=[], help="run the cases whose name contains one of these"
    )
    parser.add_argument(
        "--tol", type=float, default=1e-3, help="largest relative difference allowed"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--verbose", action="store_true", help="print the traceback of each failure"
    )
    parser.add_argument(
        "--no-alias",
        action="store_true",
        help="map MinkowskiEngine by sys.modules, not install_alias",
    )
    parser.add_argument(
        "--fix-minkowski-slice",
        action="store_true",
        help="patch MinkowskiEngine's slice of strided tensors (upstream issue #513) when comparing",
    )
    parser.add_argument(
        "--double",
        action="store_true",
        help="float64 networks and inputs (separates rounding from bugs)",
    )
    opts = parser.parse_args(argv)
    if opts.double:
        torch.set_default_dtype(torch.float64)

    sandbox = Sandbox(opts.examples_dir)
    real = real_engine_modules() if opts.compare else None
    # the user's way (install_alias) unless a real MinkowskiEngine is importable, which the alias
    # never shadows; then explicit sys.modules entries stand in for it
    native: dict[str, ModuleType] | None = None
    if real is not None or opts.no_alias or real_minkowski_installed():
        native = native_engine_modules()
    print(f"native engine through {'install_alias()' if native is None else 'sys.modules entries'}")
    if sandbox.stubs:
        print(f"stubbed (not installed, unused by the networks): {', '.join(sandbox.stubs)}")
    rows: list[dict[str, Any]] = []
    failed = False

    def wanted(name: str) -> bool:
        return not opts.only or any(s in name for s in opts.only)

    for fcase in (c for c in FUNCTION_CASES if wanted(c.name)):
        ours = run_functions(sandbox, fcase, native)
        theirs = run_functions(sandbox, fcase, real) if real is not None else None
        row: dict[str, Any] = {"case": fcase.name, "native": ours, "minkowski": theirs}
        if theirs is not None:
            # these demos were written for MinkowskiEngine 0.4; what counts is behaving the same
            same = [
                a.split(":")[1].strip() == b.split(":")[1].strip() for a, b in zip(ours, theirs)
            ]
            row["same_as_minkowski"] = all(same) and len(ours) == len(theirs)
            failed |= not row["same_as_minkowski"]
        rows.append(row)

    for ncase in (c for c in NETWORK_CASES if wanted(c.name)):
        data = ncase.data()
        row = {"case": ncase.name}
        try:
            run, state, size = run_network(sandbox, ncase, native, data, None)
            problems = check_run(run)
            row.update(native_ok=not problems, native_s=run.seconds, size=size, problems=problems)
        except Exception as exc:
            row.update(native_ok=False, problems=[_error(exc)], trace=traceback.format_exc())
            run = None
        if run is not None and real is not None:
            try:
                patch = (
                    fixed_minkowski_strided_slice(real["MinkowskiEngine"])
                    if opts.fix_minkowski_slice
                    else contextlib.nullcontext()
                )
                with patch:
                    ref, _, _ = run_network(sandbox, ncase, real, data, state)
                cmp = compare_runs(run, ref)
                row.update(
                    minkowski_s=ref.seconds,
                    output_rel=cmp.output_rel,
                    grad_rel=cmp.grad_rel,
                    worst=f"{cmp.worst_output} / {cmp.worst_grad}",
                    compare_problems=cmp.problems,
                    rounding_zero_grads=cmp.rounding_zero,
                    minkowski_problems=check_run(ref),
                )
                failed |= bool(cmp.problems) or max(cmp.output_rel, cmp.grad_rel) > opts.tol
            except Exception as exc:
                row.update(
                    compare_problems=[f"MinkowskiEngine run: {type(exc).__name__}: {exc}"[:400]]
                )
                failed = True
        failed |= not row["native_ok"]
        rows.append(row)
        _print_row(row, opts.verbose)

    _print_table(rows, compare=real is not None)
    if opts.json:
        opts.json.write_text(
            json.dumps([{k: v for k, v in r.items() if k != "trace"} for r in rows], indent=1)
        )
    sandbox.close()
    return 1 if failed else 0


def _print_row(row: dict[str, Any], verbose: bool) -> None:
    status = "ok" if row.get("native_ok") else "FAIL"
    print(f"[{status}] {row['case']}: {'; '.join(row.get('problems', []))[:300]}", flush=True)
    if verbose and "trace" in row:
        print(row["trace"], flush=True)


def _print_table(rows: list[dict[str, Any]], compare: bool) -> None:
    print()
    head = "| example | native fwd+bwd | native s |"
    head += (
        " MinkowskiEngine s | max rel. diff outputs | max rel. diff gradients | notes |"
        if compare
        else " notes |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        if "native" in r:  # function case
            notes = "; ".join(r["native"])
            same = r.get("same_as_minkowski")
            cells = [
                "same as MinkowskiEngine"
                if same
                else ("differs from MinkowskiEngine" if same is False else "-"),
                "-",
            ]
            if compare:
                cells += ["-", "-", "-"]
            print(f"| {r['case']} | {' | '.join(cells)} | {notes} |")
            continue
        ok = "ok" if r["native_ok"] else "FAIL"
        notes = "; ".join(r.get("problems", []) + r.get("compare_problems", []))[:200]
        notes = notes or r.get("size", "")
        if "worst" in r:
            notes += f"; largest: {r['worst']}"
        if r.get("rounding_zero_grads"):
            notes += f"; zero up to rounding: {', '.join(r['rounding_zero_grads'])}"
        cells = [ok, f"{r.get('native_s', float('nan')):.2f}"]
        if compare:
            cells += [
                f"{r['minkowski_s']:.2f}" if "minkowski_s" in r else "-",
                f"{r['output_rel']:.1e}" if "output_rel" in r else "-",
                f"{r['grad_rel']:.1e}" if "grad_rel" in r else "-",
            ]
        print(f"| {r['case']} | {' | '.join(cells)} | {notes} |")


if __name__ == "__main__":
    sys.exit(main())
