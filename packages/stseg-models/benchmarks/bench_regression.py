"""Do the sparse engine's existing ops train slower, or with more memory, than at a base commit?

    python bench_regression.py --json OUT.json [--quick] [--base-commit fbdadfe | --base-src PATH]
                               [--head-src PATH] [--rounds N] [--repeats N] [--voxel-size M]

Two source trees run the same training workload, each in a fresh subprocess whose PYTHONPATH holds
only that tree's ``packages/*/src`` (the editable installs of the venv come later on sys.path, so
the tree's own code is what runs): "head" (default: the tree this script lives in, working tree
included) and "base" (default: a temporary ``git worktree`` of ``--base-commit``, fbdadfe = the
last commit before the MinkowskiEngine drop-in work; removed afterwards). Without git, or without
that commit, the benchmark prints why and exits 0 (so ``nox -s bench`` goes on).

Workload, one synthetic room of stseg-data's generator voxelized once in this process (the same
coordinates, features, labels and weights for both trees), one torch thread, OMP/BLAS threads 1:

* ``sparse_tensor`` (a new SparseTensor: coordinate hashing) and ``kernel_map_3x3x3`` on it;
* convolutions 3x3x3 32->32 and 128->96, stride-2 (kernel 2) 32->64 and transposed stride-2
  64->32, BatchNorm(32)+ReLU: forward with weights and input requiring gradients (``_fwd``), then
  backward of a fixed output gradient (``_bwd``); kernel maps cached, as within one pass;
* a training step of Res16UNet14F (the synthetic recipe's network; ``--network``): a fresh
  SparseTensor (kernel maps rebuilt, as for every batch), forward + cross entropy (``_fwd``) and
  backward (``_bwd``).

Only API present in both trees is used (checked against fbdadfe). Rounds alternate the trees
(base, head, base, head, ...) so that load on a shared machine hits both alike; each child times
one warm-up plus ``--repeats`` runs per section (layers: 5 at least). Reported per section and
tree: the median over rounds of each child's median wall time, the median CPU time (process time,
robust when the core is shared), the ratios head/base, the spread of the round medians (noise)
and the ratio of the fastest CPU times ("min ratio": interference from other processes only ever
adds time). The verdict needs both the median CPU ratio beyond max(10 %, its noise) and the min
ratio beyond 10 %. The median minor page faults per run ("flt") and system seconds tell allocator
effects (fresh pages touched) from slower computation. Memory: per section the peak RSS while it
ran (VmHWM, reset before each section through /proc/self/clear_refs), the child's overall VmHWM,
and, for every forward, the bytes of tensors autograd saved for backward
(deterministic; torch tracks no CPU allocator peak). Outputs, input gradients and weight gradients
of both trees are compared row-for-row after sorting by coordinates (max |head - base| /
max |base|), and each tree's later rounds against its first (determinism).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
REPO = HERE.parents[3]
DEFAULT_BASE = "fbdadfe"
NOISE_FLOOR = 0.10  # a ratio beyond 1 + max(10 %, spread) is reported as a regression
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


# -- pure summary logic (tested) ---------------------------------------------------------------------
def spread(values: Sequence[float]) -> float:
    """(max - min) / median of round medians: the run-to-run noise of one tree's figure."""
    mid = statistics.median(values)
    return (max(values) - min(values)) / mid if mid > 0 else 0.0


def verdict(ratio: float, noise: float, min_ratio: float, floor: float = NOISE_FLOOR) -> str:
    """'slower' / 'faster' when the median ratio leaves 1 by more than max(floor, noise) and the
    ratio of the fastest runs (interference only ever adds time) leaves it by more than floor."""
    margin = max(floor, noise)
    if ratio > 1.0 + margin and min_ratio > 1.0 + floor:
        return "slower"
    if ratio < 1.0 / (1.0 + margin) and min_ratio < 1.0 / (1.0 + floor):
        return "faster"
    return "same"


def summarize(rounds: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows per section from each tree's child results ({"base": [...], "head": [...]}).

    A child result holds ``sections[name] = {"wall": [s...], "cpu": [s...], "peak_rss_mib": m,
    "saved_mib": m | None}``, warm-up already dropped. Per tree: median over rounds of the child's
    medians (wall and CPU), the largest peak RSS, the spread of the round medians.
    """
    names = [n for n in rounds["head"][0]["sections"] if n in rounds["base"][0]["sections"]]
    rows = []
    for name in names:
        row: dict[str, Any] = {"section": name}
        for tree in ("base", "head"):
            secs = [r["sections"][name] for r in rounds[tree]]
            walls = [statistics.median(s["wall"]) for s in secs]
            cpus = [statistics.median(s["cpu"]) for s in secs]
            row[tree] = {
                "wall_s": statistics.median(walls),
                "cpu_s": statistics.median(cpus),
                "round_wall_s": walls,
                "spread": spread(walls),
                "cpu_spread": spread(cpus),
                "cpu_min_s": min(min(s["cpu"]) for s in secs),
                "sys_s": statistics.median(statistics.median(s.get("sys", [0.0])) for s in secs),
                "minor_faults": statistics.median(
                    statistics.median(s.get("minor_faults", [0])) for s in secs
                ),
                "peak_rss_mib": max(s["peak_rss_mib"] for s in secs),
                "saved_mib": secs[0].get("saved_mib"),
            }
        b, h = row["base"], row["head"]
        row["ratio"] = h["wall_s"] / b["wall_s"]
        row["cpu_ratio"] = h["cpu_s"] / b["cpu_s"]
        row["noise"] = max(b["spread"], h["spread"])
        row["cpu_noise"] = max(b["cpu_spread"], h["cpu_spread"])
        # the CPU ratio decides: wall time on a shared core also counts other processes' slices
        row["cpu_min_ratio"] = h["cpu_min_s"] / b["cpu_min_s"]
        row["verdict"] = verdict(row["cpu_ratio"], row["cpu_noise"], row["cpu_min_ratio"])
        rows.append(row)
    return rows


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max |b| (0 when both are zero); inf when shapes differ."""
    if a.shape != b.shape:
        return float("inf")
    scale = float(np.abs(b).max()) if b.size else 0.0
    diff = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def compare_outputs(head: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> dict[str, float]:
    """Max relative difference per saved array; ``name.C`` coordinates order ``name.F`` rows."""
    out = {}
    for key in sorted(k for k in base if not k.endswith(".C")):
        if key not in head:
            out[key] = float("inf")
            continue
        a, b = head[key], base[key]
        stem = key.rsplit(".", 1)[0]
        if key.endswith(".F") and f"{stem}.C" in base and f"{stem}.C" in head:
            ca, cb = head[f"{stem}.C"], base[f"{stem}.C"]
            if ca.shape != cb.shape:
                out[key] = float("inf")
                continue
            oa, ob = np.lexsort(ca.T[::-1]), np.lexsort(cb.T[::-1])
            if not np.array_equal(ca[oa], cb[ob]):
                out[key] = float("inf")  # different coordinate sets
                continue
            a, b = a[oa], b[ob]
        out[key] = max_rel_diff(a, b)
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    """The stdout table: times in ms, memory in MiB, minor page faults per run ("flt")."""
    head = (
        f"{'section':<26}{'base ms':>9}{'head ms':>9}{'ratio':>7}{'noise':>7}"
        f"{'cpu ratio':>10}{'cpu noise':>10}{'min ratio':>10}"
        f"{'base RSS':>10}{'head RSS':>10}{'base saved':>11}{'head saved':>11}"
        f"{'base flt':>9}{'head flt':>9}  verdict"
    )
    lines = [head, "-" * len(head)]

    def mib(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    for r in rows:
        b, h = r["base"], r["head"]
        lines.append(
            f"{r['section']:<26}{b['wall_s'] * 1e3:>9.1f}{h['wall_s'] * 1e3:>9.1f}"
            f"{r['ratio']:>7.3f}{r['noise'] * 100:>6.1f}%"
            f"{r['cpu_ratio']:>10.3f}{r['cpu_noise'] * 100:>9.1f}%{r['cpu_min_ratio']:>10.3f}"
            f"{mib(b['peak_rss_mib']):>10}{mib(h['peak_rss_mib']):>10}"
            f"{mib(b['saved_mib']):>11}{mib(h['saved_mib']):>11}"
            f"{b.get('minor_faults', 0):>9.0f}{h.get('minor_faults', 0):>9.0f}  {r['verdict']}"
        )
    return "\n".join(lines)


# -- the child: one tree's workload ------------------------------------------------------------------
def _status_mib(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where /proc refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class Sections:
    """Times sections (wall and CPU seconds, first run dropped) and their peak RSS."""

    def __init__(self) -> None:
        self.results: dict[str, dict[str, Any]] = {}
        self.peak_mib = _status_mib("VmHWM")  # imports and data, before the first reset

    def run(self, runs: int, steps: dict[str, Callable[[], Any]]) -> None:
        """`runs` rounds of the steps in order (e.g. forward then backward); warm-up included.

        Beside wall and CPU seconds: the system part of the CPU time and the minor page faults of
        each run, which tell allocator effects (fresh pages touched) from slower computation.
        """
        gc.collect()
        self.peak_mib = max(self.peak_mib, _status_mib("VmHWM"))
        reset = _reset_peak()
        samples: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name in steps}
        for _ in range(runs):
            for name, step in steps.items():
                before = resource.getrusage(resource.RUSAGE_SELF)
                start, start_cpu = time.perf_counter(), time.process_time()
                step()
                wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
                after = resource.getrusage(resource.RUSAGE_SELF)
                sys_s = after.ru_stime - before.ru_stime
                samples[name].append((wall, cpu, sys_s, after.ru_minflt - before.ru_minflt))
        peak = _status_mib("VmHWM")
        self.peak_mib = max(self.peak_mib, peak)
        for name, runs_ in samples.items():
            kept = runs_[1:] if len(runs_) > 1 else runs_
            self.results[name] = {
                "wall": [r[0] for r in kept],
                "cpu": [r[1] for r in kept],
                "sys": [r[2] for r in kept],
                "minor_faults": [r[3] for r in kept],
                "peak_rss_mib": peak if reset else None,
                "saved_mib": None,
            }


def saved_mib(forward: Callable[[], Any]) -> float:
    """MiB of distinct storages autograd keeps for backward during `forward()` (graph then freed)."""
    import torch

    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        seen[(s.data_ptr(), s.nbytes())] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out
    gc.collect()
    return sum(seen.values()) / 2**20


def child_main(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    import stseg_models
    import stseg_models.sparse as ME
    from stseg_models import build_model

    src = Path(args.child_src).resolve()
    loaded = Path(stseg_models.__file__).resolve()
    if src not in loaded.parents:
        raise SystemExit(f"bench_regression child: stseg_models came from {loaded}, not {src}")
    data = np.load(args.data)
    coords = torch.from_numpy(
        np.concatenate([np.zeros((len(data["coords"]), 1), np.int32), data["coords"]], 1)
    ).int()
    feats3 = torch.from_numpy(data["features"]).float()
    labels = torch.from_numpy(data["labels"]).long()
    n = len(coords)
    g = torch.Generator().manual_seed(0)
    f32, f128 = torch.randn(n, 32, generator=g), torch.randn(n, 128, generator=g)
    runs = args.repeats + 1
    layer_runs = args.layer_repeats + 1
    sec = Sections()
    saved: dict[str, np.ndarray] = {}

    def leaf(feats: torch.Tensor, like: Any = None) -> tuple[torch.Tensor, Any]:
        x = feats.detach().clone().requires_grad_(True)
        if like is None:
            return x, ME.SparseTensor(x, coords)
        kw = {"coordinate_map_key": like.coordinate_map_key}
        return x, ME.SparseTensor(x, coordinate_manager=like.coordinate_manager, **kw)

    # -- coordinate hashing and the 3x3x3 kernel map of a fresh set
    state: dict[str, Any] = {}

    def new_tensor() -> None:
        state["x"] = ME.SparseTensor(f32, coords)

    def kernel_map() -> None:
        x = state["x"]
        gen = ME.KernelGenerator(3, dimension=3)
        state["kmap"] = x.coordinate_manager.kernel_map(
            x.coordinate_map_key, x.coordinate_map_key, gen
        )

    sec.run(layer_runs, {"sparse_tensor": new_tensor, "kernel_map_3x3x3": kernel_map})
    kmap = state.pop("kmap")
    saved["kernel_map_pairs"] = np.array([kmap.in_idx.numel()])
    state.clear()

    # -- layers: forward with gradients, backward of a fixed output gradient
    def seeded(t: torch.Tensor, name: str) -> None:
        gen = torch.Generator().manual_seed(sum(map(ord, name)))
        with torch.no_grad():
            t.copy_(torch.randn(t.shape, generator=gen) * 0.1)

    def layer_steps(name: str, layer: Any, feats: torch.Tensor, like: Any) -> None:
        if hasattr(layer, "kernel"):
            seeded(layer.kernel, name)
        params = list(layer.parameters())
        x, xs = leaf(feats, like)
        out: dict[str, Any] = {}
        grad: list[torch.Tensor] = []

        def fwd() -> None:
            for p in params:
                p.grad = None
            x.grad = None
            out["y"] = layer(xs)

        def bwd() -> None:
            y = out.pop("y")
            if not grad:
                gen = torch.Generator().manual_seed(sum(map(ord, name)) + 1)
                grad.append(torch.randn(y.F.shape, generator=gen))
            y.F.backward(grad[0])
            out["last"] = y

        sec.run(layer_runs, {f"{name}_fwd": fwd, f"{name}_bwd": bwd})
        sec.results[f"{name}_fwd"]["saved_mib"] = saved_mib(lambda: layer(xs))
        y = out.pop("last")
        saved[f"{name}.out.F"] = y.F.detach().numpy()
        saved[f"{name}.out.C"] = y.C.numpy()
        saved[f"{name}.in_grad.F"] = x.grad.numpy()
        saved[f"{name}.in_grad.C"] = xs.C.numpy()
        for i, p in enumerate(params):
            saved[f"{name}.param{i}_grad"] = p.grad.numpy()

    _, base32 = leaf(f32)
    layer_steps(
        "conv3_32_32", ME.MinkowskiConvolution(32, 32, kernel_size=3, dimension=3), f32, base32
    )
    conv = ME.MinkowskiConvolution(128, 96, kernel_size=3, dimension=3)
    layer_steps("conv3_128_96", conv, f128, base32)
    down = ME.MinkowskiConvolution(32, 64, kernel_size=2, stride=2, dimension=3)
    layer_steps("conv2_stride2_32_64", down, f32, base32)
    with torch.no_grad():
        coarse = down(base32)
    up = ME.MinkowskiConvolutionTranspose(64, 32, kernel_size=2, stride=2, dimension=3)
    coarse_feats = torch.randn(coarse.F.shape, generator=torch.Generator().manual_seed(3))
    # the coarse rows: sorted by coordinate so both trees give the same feature to the same voxel
    order = np.lexsort(coarse.C.numpy().T[::-1])
    rank = torch.from_numpy(np.argsort(order))
    layer_steps("convtr2_stride2_64_32", up, coarse_feats[rank], coarse)
    bn_relu = torch.nn.Sequential(ME.MinkowskiBatchNorm(32), ME.MinkowskiReLU()).train()
    layer_steps("batchnorm_relu_32", bn_relu, f32, base32)
    del base32, coarse

    # -- a training step of the network on a fresh coordinate set
    torch.manual_seed(0)
    model = build_model(args.network, 3, 20).train()
    weights = Path(args.weights)
    if weights.exists():
        model.load_state_dict(torch.load(weights))
    else:
        torch.save(model.state_dict(), weights)
    params = list(model.parameters())
    out: dict[str, Any] = {}

    def net_forward() -> tuple[Any, torch.Tensor]:
        y = model(ME.SparseTensor(feats3, coords))
        return y, torch.nn.functional.cross_entropy(y.F, labels, ignore_index=255)

    def net_fwd() -> None:
        for p in params:
            p.grad = None
        out["y"], out["loss"] = net_forward()

    def net_bwd() -> None:
        out["loss"].backward()

    net = args.network
    sec.run(runs, {f"{net}_step_fwd": net_fwd, f"{net}_step_bwd": net_bwd})
    sec.results[f"{net}_step_fwd"]["saved_mib"] = saved_mib(net_forward)
    saved[f"{net}.logits.F"] = out["y"].F.detach().numpy()
    saved[f"{net}.logits.C"] = out["y"].C.numpy()
    saved[f"{net}.loss"] = out["loss"].detach().numpy().reshape(1)
    named = [(k, p) for k, p in model.named_parameters() if p.grad is not None]
    for k, p in named[:2] + named[-2:]:
        saved[f"{net}.grad.{k}"] = p.grad.numpy()

    np.savez(args.outputs, **saved)
    tree = "this checkout" if loaded.is_relative_to(REPO) else "the base checkout"
    result = {
        "sections": sec.results,
        "vmhwm_mib": sec.peak_mib,
        "voxels": n,
        "kernel_map_pairs": int(saved["kernel_map_pairs"][0]),
        # which tree was imported, without this machine's paths (results files are committed)
        "stseg_models_file": Path(*loaded.parts[loaded.parts.index("packages") :]).as_posix(),
        "stseg_models_tree": tree,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    Path(args.child_json).write_text(json.dumps(result))


# -- the parent: data, trees, rounds, report ---------------------------------------------------------
def make_room(voxel_size: float, seed: int) -> dict[str, np.ndarray]:
    """One stseg-data synthetic room voxelized: coords int32 [N, 3], rgb features, NYU40 labels."""
    from stseg_data.synth_scannet import generate_room
    from stseg_data.voxelize import voxelize

    arrays, _, _ = generate_room(np.random.default_rng([seed, 0, 1]), 0)
    rgb = arrays["rgb"].astype(np.float32) / 255.0 - 0.5
    vox = voxelize(arrays["xyz"], voxel_size, features=rgb, labels=arrays["label"])
    labels = np.where(vox.labels < 20, vox.labels, 255)  # 20 classes; the rest ignored
    return {"coords": vox.coords, "features": vox.features, "labels": labels}


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def base_worktree(commit: str) -> tuple[Path | None, str]:
    """A detached worktree of `commit` in a temporary folder, or (None, why not)."""
    if shutil.which("git") is None:
        return None, "git is not installed"
    try:
        full = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    except (subprocess.CalledProcessError, OSError) as exc:
        why = " ".join(str(getattr(exc, "stderr", None) or exc).split())
        return None, f"commit {commit} not found in {REPO} ({why})"
    path = Path(tempfile.mkdtemp(prefix="stseg-base-"))
    try:
        git("worktree", "add", "--detach", str(path), full)
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(path, ignore_errors=True)
        return None, f"git worktree add failed: {' '.join(exc.stderr.split())}"
    return path, full


def tree_pythonpath(tree: Path) -> str:
    srcs = sorted(str(p) for p in (tree / "packages").glob("*/src") if p.is_dir())
    return os.pathsep.join(srcs)


def run_child(
    tree: Path, tmp: Path, label: str, rnd: int, args: argparse.Namespace
) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=tree_pythonpath(tree), **dict.fromkeys(THREAD_VARS, "1"))
    child_json, outputs = tmp / f"{label}{rnd}.json", tmp / f"{label}{rnd}.npz"
    cmd = [args.python, str(HERE), "--child-src", str(tree / "packages/stseg-models/src")]
    cmd += ["--data", str(tmp / "room.npz"), "--weights", str(tmp / "weights.pt")]
    cmd += ["--outputs", str(outputs), "--child-json", str(child_json)]
    cmd += ["--repeats", str(args.repeats), "--layer-repeats", str(args.layer_repeats)]
    cmd += ["--network", args.network]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_regression: {label} child failed:\n{proc.stderr[-3000:]}")
    result = json.loads(child_json.read_text())
    result["elapsed_s"] = time.perf_counter() - start
    result["outputs"] = str(outputs)
    return result


def load_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def uptime() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--quick", action="store_true", help="tiny room, 2 rounds, 1 repeat")
    p.add_argument("--base-commit", default=DEFAULT_BASE)
    p.add_argument("--base-src", type=Path, help="base source tree (instead of a worktree)")
    p.add_argument("--head-src", type=Path, default=REPO, help="head source tree")
    p.add_argument("--rounds", type=int, help="rounds per tree (default 3, quick 2)")
    p.add_argument("--repeats", type=int, help="timed runs per section and child (default 3)")
    p.add_argument(
        "--layer-repeats", type=int, help="the same for layers (default max(5, repeats))"
    )
    p.add_argument("--voxel-size", type=float, help="metres (default 0.04, quick 0.12)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--network", default="Res16UNet14F")
    p.add_argument("--python", default=sys.executable, help="interpreter of the children")
    for name in ("--child-src", "--data", "--weights", "--outputs", "--child-json"):
        p.add_argument(name, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.repeats = args.repeats or (1 if args.quick else 3)
    # layers are short: more runs against scheduler noise
    args.layer_repeats = args.layer_repeats or (
        args.repeats if args.quick else max(5, args.repeats)
    )
    args.voxel_size = args.voxel_size or (0.12 if args.quick else 0.04)
    return args


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    if args.child_src:
        child_main(args)
        return
    created: Path | None = None
    if args.base_src is not None:
        base, base_rev = args.base_src.resolve(), "(source tree)"
    else:
        created, base_rev = base_worktree(args.base_commit)
        if created is None:
            print(f"bench_regression: skipped, {base_rev}")
            write_json(args.json, {"skipped": base_rev})
            return
        base = created
    head = args.head_src.resolve()
    try:
        head_rev = git("rev-parse", "HEAD", cwd=head)
        # uncommitted edits of the measured code (the working tree is what runs)
        status = git("status", "--porcelain", "--", "packages/*/src/*", cwd=head)
        dirty = [line.split(maxsplit=1)[1] for line in status.splitlines()]
    except (subprocess.CalledProcessError, OSError):
        head_rev, dirty = "unknown", []
    try:
        report = compare_trees(args, base, head)
    finally:
        if created is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(created)], cwd=REPO)
            shutil.rmtree(created, ignore_errors=True)
    # the trees by role, not by this machine's paths (results files are committed)
    base_src = "this checkout" if base.resolve() == REPO.resolve() else "a separate checkout"
    head_src = "this checkout" if head.resolve() == REPO.resolve() else "a separate checkout"
    report |= {"base": {"src": base_src, "commit": base_rev}}
    report |= {"head": {"src": head_src, "commit": head_rev, "uncommitted_src": dirty}}
    write_json(args.json, report)


def compare_trees(args: argparse.Namespace, base: Path, head: Path) -> dict[str, Any]:
    load_before = uptime()
    with tempfile.TemporaryDirectory(prefix="bench-regression-") as tmp_name:
        tmp = Path(tmp_name)
        room = make_room(args.voxel_size, args.seed)
        np.savez(tmp / "room.npz", **room)
        print(
            f"room: {len(room['coords'])} voxels at {args.voxel_size * 100:g} cm, "
            f"{args.rounds} rounds x (base, head), {args.repeats} timed runs per section; "
            f"load before: {load_before}",
            flush=True,
        )
        rounds: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
        start = time.perf_counter()
        for rnd in range(args.rounds):
            for label, tree in (("base", base), ("head", head)):
                res = run_child(tree, tmp, label, rnd, args)
                rounds[label].append(res)
                print(
                    f"  round {rnd + 1} {label}: {res['elapsed_s']:.1f} s, "
                    f"VmHWM {res['vmhwm_mib']:.0f} MiB, load {uptime()}",
                    flush=True,
                )
        first = {t: load_npz(rounds[t][0]["outputs"]) for t in rounds}
        agreement = compare_outputs(first["head"], first["base"])
        determinism = {
            t: max(
                (max(compare_outputs(load_npz(r["outputs"]), first[t]).values()) for r in rs[1:]),
                default=0.0,
            )
            for t, rs in rounds.items()
        }
    rows = summarize(rounds)
    print(format_table(rows))
    print(
        "child VmHWM MiB: base "
        + ", ".join(f"{r['vmhwm_mib']:.0f}" for r in rounds["base"])
        + "; head "
        + ", ".join(f"{r['vmhwm_mib']:.0f}" for r in rounds["head"])
    )
    worst = max(agreement, key=agreement.get)
    where = f" ({worst})" if agreement[worst] > 0 else " (every array identical)"
    print(f"outputs head vs base: max rel diff {agreement[worst]:.3g}{where}")
    print(f"determinism (later rounds vs first): {determinism}")
    print(f"load after: {uptime()}; {time.perf_counter() - start:.0f} s")
    for r in rounds.values():
        for res in r:
            res.pop("outputs")
    return {
        "benchmark": "bench_regression",
        "voxel_size_m": args.voxel_size,
        "voxels": rounds["head"][0]["voxels"],
        "kernel_map_pairs": {t: rounds[t][0]["kernel_map_pairs"] for t in rounds},
        "network": args.network,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "threads": 1,
        "load_before": load_before,
        "load_after": uptime(),
        "table": rows,
        "vmhwm_mib": {t: [r["vmhwm_mib"] for r in rounds[t]] for t in rounds},
        "agreement_max_rel_diff": agreement,
        "determinism_max_rel_diff": determinism,
        "children": rounds,
    }


if __name__ == "__main__":
    main()
