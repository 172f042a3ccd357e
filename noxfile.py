"""Sessions for the stseg monorepo. `nox -l` lists them; `nox -s NAME` runs one.

Every session installs the packages under `packages/*` (discovered, in dependency order) with pip,
editable, into its own virtual environment, with the pins of `constraints/cpu.txt`. That file pins
the CPU build of PyTorch (`torch==X+cpu`): an unpinned `torch` pulls several GB of CUDA packages.
PyPI has no `+cpu` builds, so the sessions add the PyTorch CPU index as an extra index when it
answers a short probe; where it does not, a local `+cpu` wheel in pip's find-links serves the pin;
where neither exists they log why and fall back to the plain `torch==X` (on Linux x86-64 PyPI's
CUDA build). The decision is `tools/torch_pin.py:choose_torch_source`.

GPU users: point `STSEG_CONSTRAINTS` at a constraints file of your own (for example one line
`torch==2.13.0+cu128`, with `PIP_EXTRA_INDEX_URL` naming the matching PyTorch index), or set
`STSEG_CONSTRAINTS=none` to let pip resolve torch freely.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import nox
import tomllib
from packaging.tags import sys_tags

ROOT = Path(__file__).resolve().parent
PACKAGES_DIR = ROOT / "packages"
CPU_CONSTRAINTS = ROOT / "constraints" / "cpu.txt"
sys.path.insert(0, str(ROOT / "tools"))
import torch_pin  # noqa: E402  (a module of this repository, found through the line above)

TRITON = "triton; sys_platform == 'linux' and platform_machine == 'x86_64'"
nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True


def _read_project(package_dir: Path) -> dict:
    with open(package_dir / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]


def discover_packages() -> list[Path]:
    """Package folders under packages/, each after the siblings it depends on."""
    folders = {p.parent.name: p.parent for p in sorted(PACKAGES_DIR.glob("*/pyproject.toml"))}
    requires: dict[str, set[str]] = {}
    for name, folder in folders.items():
        deps = {
            re.split(r"[ <>=!~;\[(]", d, maxsplit=1)[0]
            for d in _read_project(folder)["dependencies"]
        }
        requires[name] = deps & set(folders)
    ordered: list[str] = []
    while len(ordered) < len(folders):
        ready = [n for n in folders if n not in ordered and requires[n] <= set(ordered)]
        if not ready:
            raise RuntimeError(
                f"dependency cycle among packages: {sorted(set(folders) - set(ordered))}"
            )
        ordered.extend(sorted(ready))
    return [folders[n] for n in ordered]


@functools.cache
def _torch_source() -> torch_pin.TorchSource:
    """Where the CPU pin's torch comes from here (probed once per nox run)."""
    pin = torch_pin.read_pin(CPU_CONSTRAINTS.read_text())
    try:
        config = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        config = ""
    folders = torch_pin.find_links_folders(config)
    names = [wheel.name for folder in folders for wheel in folder.glob("torch-*.whl")]
    local = torch_pin.torch_wheel_versions(names, sys_tags())
    return torch_pin.choose_torch_source(pin, torch_pin.index_reachable(), local)


def _constraint_args(session: nox.Session | None = None) -> list[str]:
    """pip arguments for the CPU pins (`STSEG_CONSTRAINTS` names another file, or `none`)."""
    choice = os.environ.get("STSEG_CONSTRAINTS")
    if choice is not None:
        return [] if choice.lower() == "none" else ["-c", choice]
    source = _torch_source()
    if session is not None:
        session.log(f"torch: {source.message}")
    text = CPU_CONSTRAINTS.read_text()
    path = CPU_CONSTRAINTS
    if source.pin != torch_pin.read_pin(text):
        path = ROOT / ".nox" / "constraints-fallback.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text(torch_pin.with_pin(text, source.pin))
    return ["-c", str(path), *source.pip_args]


def install_packages(session: nox.Session, *extra: str, packages: list[Path] | None = None) -> None:
    """Install `packages` (default: all) editable, in dependency order, plus `extra` requirements."""
    chosen = packages if packages is not None else discover_packages()
    editable = [arg for folder in chosen for arg in ("-e", str(folder))]
    session.install(*_constraint_args(session), *editable, *extra)


def _console_scripts() -> dict[str, str]:
    scripts: dict[str, str] = {}
    for folder in discover_packages():
        for name, target in _read_project(folder).get("scripts", {}).items():
            scripts[name] = target.split(".", 1)[0]
    return scripts


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests and the repository's own (tests/: pins, licence) (CPU; GPU-marked
    tests skip without CUDA)."""
    # Triton (Linux x86-64 wheels only) lets tests/test_sparse_triton.py run the CUDA kernels under
    # its CPU interpreter; its version is pinned in constraints/cpu.txt
    install_packages(session, "-r", "requirements/test.txt", TRITON)
    session.env.setdefault("OMP_NUM_THREADS", "2")
    session.run("pytest", str(ROOT / "tests"), *session.posargs)
    for folder in discover_packages():
        if any((folder / "tests").glob("test_*.py")):
            session.run("pytest", str(folder / "tests"), *session.posargs)


@nox.session
def compat(session: nox.Session) -> None:
    """Native sparse engine == MinkowskiEngine 0.5.4 (CPU): forward, coordinates, gradients, models.

    Builds MinkowskiEngine once per machine with `stseg-models install-minkowski` (needs Debian's
    libopenblas-dev; about 15 min on 2 cores), then reuses the wheel cached in ~/.cache/stseg/wheels.
    """
    install_packages(session, "-r", "requirements/test.txt")
    session.env["STSEG_REQUIRE_MINKOWSKI"] = "1"
    session.run("stseg-models", "install-minkowski")
    session.run(
        "pytest", "-m", "minkowski", str(PACKAGES_DIR / "stseg-models" / "tests"), *session.posargs
    )


@nox.session(name="me-tests")
def me_tests(session: nox.Session) -> None:
    """MinkowskiEngine 0.5.4's own test files, unedited, on the native engine (CPU), file by file.

    The pinned copy in packages/stseg-models/tests/me_upstream runs through the alias (no real
    MinkowskiEngine in this venv); each test passing on real MinkowskiEngine 0.5.4 -- its outcomes,
    measured in the compat venv with `tools/run_me_tests.py run`, are
    benchmarks/results/me_tests_minkowski_cpu.json, or the file given after `--` -- must pass.
    """
    install_packages(session, "-r", "requirements/test.txt")
    session.run("python", "-m", "pip", "uninstall", "--yes", "--quiet", "MinkowskiEngine")
    session.env.setdefault("OMP_NUM_THREADS", "2")
    package = PACKAGES_DIR / "stseg-models"
    results = package / "benchmarks" / "results"
    reference = session.posargs[0] if session.posargs else results / "me_tests_minkowski_cpu.json"
    native = Path(session.create_tmp()) / "me_tests_native.json"
    tool = str(package / "tools" / "run_me_tests.py")
    # 60 s a test: the 10-million-iteration leak loops (convolution.py, interpolation.py) time out
    session.run("python", tool, "run", "--out", str(native), "--timeout", "60")
    summary = Path(session.create_tmp()) / "me_tests_cpu.json"
    session.run("python", tool, "compare", str(native), str(reference), "--summary", str(summary))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the packages, tools/, tests/ and the noxfile."""
    session.install("-r", "requirements/lint.txt")
    paths = ["packages", "tools", "tests", "noxfile.py", "conftest.py"]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on each package's src/ tree and on tools/."""
    install_packages(session, "-r", "requirements/lint.txt")
    for folder in discover_packages():
        session.run("mypy", str(folder / "src"))
    session.run("mypy", str(ROOT / "tools"))


@nox.session
def cli(session: nox.Session) -> None:
    """Every console script's --help, `python -m` entry, and exit code 2 on an unknown command."""
    install_packages(session)
    for script, module in _console_scripts().items():
        session.run(script, "--help", silent=True)
        session.run("python", "-m", module, "--help", silent=True)
        session.run(script, "no-such-command", success_codes=[2], silent=True)
        session.log(f"{script}: --help ok, python -m {module} ok, unknown command exits 2")


def build_wheels(session: nox.Session) -> Path:
    """Build a fresh wheel of every package into dist/ and return that folder."""
    outdir = ROOT / "dist"
    for stale in outdir.glob("*.whl"):
        stale.unlink()
    for folder in discover_packages():
        # pip builds in an isolated environment holding only the backend (poetry-core), so the
        # session's own environment stays as clean as the user's.
        session.run(
            "python",
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--wheel-dir",
            str(outdir),
            str(folder),
            silent=True,
        )
    return outdir


def _licence_problems(name: str, members: dict[str, bytes]) -> list[str]:
    """Why an archive's licence text is not the repository's LICENSE (empty when it is)."""
    expected = (ROOT / "LICENSE").read_bytes()
    found = [path for path in members if path.rsplit("/", 1)[-1] == "LICENSE"]
    if not found:
        return [f"{name}: no LICENSE file"]
    return [f"{name}: {path} differs from LICENSE" for path in found if members[path] != expected]


@nox.session
def wheels(session: nox.Session) -> None:
    """Build all five wheels and sdists; fail if any Requires-Dist holds a path or a URL, or if a
    wheel's dist-info or an sdist lacks the repository's LICENSE."""
    outdir = build_wheels(session)
    session.install("poetry-core>=2.0")
    bad: list[str] = []
    for folder in discover_packages():
        name = _read_project(folder)["name"].replace("-", "_")
        version = _read_project(folder)["version"]
        wheel = next(outdir.glob(f"{name}-{version}-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            metadata = archive.read(f"{name}-{version}.dist-info/METADATA").decode()
            info = f"{name}-{version}.dist-info/"
            licences = {n: archive.read(n) for n in archive.namelist() if n.startswith(info)}
        bad += _licence_problems(wheel.name, licences)
        for line in metadata.splitlines():
            if line.startswith("Requires-Dist:") and re.search(r"@|file:|://|\.\./", line):
                bad.append(f"{wheel.name}: {line}")
        with session.chdir(folder):
            session.run(
                "python",
                "-c",
                "import sys; from poetry.core.masonry.api import build_sdist; build_sdist(sys.argv[1])",
                str(outdir),
                silent=True,
            )
        sdist = outdir / f"{name}-{version}.tar.gz"
        with tarfile.open(sdist) as archive:
            top = f"{name}-{version}/LICENSE"
            member = archive.extractfile(top) if top in archive.getnames() else None
            bad += _licence_problems(sdist.name, {top: member.read()} if member else {})
        session.log(f"{wheel.name}, {sdist.name}: no paths or URLs in metadata, LICENSE inside")
    if bad:
        session.error("wheels / sdists are wrong:\n" + "\n".join(bad))


# The documented ways to install stseg-models for inference without the other stseg packages
# (README, "Inference only"); each `standalone` run checks one of them in a fresh venv.
STANDALONE_ROUTES = {
    "folders": ["packages/stseg-data", "packages/stseg-models"],
    "wheels": ["--find-links", "dist", "stseg-models"],
}


@nox.session(reuse_venv=False)
@nox.parametrize("route", list(STANDALONE_ROUTES))
def standalone(session: nox.Session, route: str) -> None:
    """A fresh venv with stseg-models installed as the README says (`folders`: the two package
    folders; `wheels`: `--find-links dist` after `nox -s wheels`) holds stseg-data and
    stseg-models and no other stseg package, and runs `predict`."""
    if route == "wheels":
        build_wheels(session)
    session.install(*_constraint_args(session), *STANDALONE_ROUTES[route])
    installed = session.run("python", "-m", "pip", "list", "--format=freeze", silent=True) or ""
    names = {line.split("==")[0].lower() for line in str(installed).splitlines()}
    stseg = {n for n in names if n.startswith(("stseg", "ssen"))}
    if stseg != {"stseg-data", "stseg-models"}:
        session.error(f"expected stseg-data and stseg-models only, found {sorted(stseg)}")
    session.log(f"installed stseg packages: {sorted(stseg)}")
    workdir = Path(session.create_tmp()) / "standalone"
    session.run(
        "python",
        str(PACKAGES_DIR / "stseg-models" / "tests" / "standalone_predict_check.py"),
        str(workdir),
    )


# stseg-train's README install block: the trainer without ssen-instance and stseg-viz.
TRAIN_STANDALONE = ["packages/stseg-data", "packages/stseg-models", "packages/stseg-train"]


@nox.session(name="standalone-train", reuse_venv=False)
def standalone_train(session: nox.Session) -> None:
    """A fresh venv with stseg-train's README install (three folders, no ssen-instance or
    stseg-viz) runs a tiny `stseg-train synthetic` run, `--resume` of it and `stseg-train eval`."""
    session.install(*_constraint_args(session), *TRAIN_STANDALONE)
    installed = session.run("python", "-m", "pip", "list", "--format=freeze", silent=True) or ""
    names = {line.split("==")[0].lower() for line in str(installed).splitlines()}
    stseg = {n for n in names if n.startswith(("stseg", "ssen"))}
    if stseg != {"stseg-data", "stseg-models", "stseg-train"}:
        session.error(
            f"expected stseg-data, stseg-models and stseg-train only, found {sorted(stseg)}"
        )
    work = Path(session.create_tmp()) / "standalone-train"
    if work.exists():
        shutil.rmtree(work)
    run, data = work / "run", work / "data"
    tiny = ["--set", "synthetic_train_scenes=4", "--set", "synthetic_val_scenes=1",
            "--set", "eval_rotations=1", "--set", "num_workers=0", "--threads", "1",
            "--set", "progress=false", "--set", "tensorboard=false"]  # fmt: skip
    session.run("stseg-train", "synthetic", "--data", str(data), "--out", str(run),
                "--max-iter", "2", *tiny)  # fmt: skip
    session.run("stseg-train", "synthetic", "--resume", str(run), "--max-iter", "4")
    session.run(
        "stseg-train", "eval", str(run), "--data", str(data / "prepared"), "--rotations", "1"
    )
    iters = [json.loads(line)["iter"] for line in (run / "log.jsonl").read_text().splitlines()]
    evaluated = json.loads((run / "eval_val.json").read_text())
    if iters[-1] != 4 or not (run / "checkpoints" / "iter_00000004.pth").is_file():
        session.error(f"--resume did not continue the run to iteration 4 (log iterations {iters})")
    if not 0.0 <= evaluated["miou"] <= 1.0:
        session.error(f"eval_val.json: mIoU {evaluated['miou']} is not in [0, 1]")
    session.log(f"standalone stseg-train {sorted(stseg)}: trained 2 + 2 (--resume), eval mIoU "
                f"{evaluated['miou']:.4f}")  # fmt: skip


@nox.session
def demo(session: nox.Session) -> None:
    """The main job on built-in synthetic data: generate, preprocess, train, evaluate, predict, render.

    Writes runs/demo (or the folder given after `--`); an existing run folder is refused, not clobbered.
    """
    install_packages(session)
    out = session.posargs[0] if session.posargs else str(ROOT / "runs" / "demo")
    session.run("stseg-train", "synthetic", "--out", out)


@nox.session(name="demo-instance")
def demo_instance(session: nox.Session) -> None:
    """SSEN instance segmentation from nothing: generate, train both networks, AP, render a room.

    Synthetic rooms, semantic and embedding training, AP / AP50 / AP25 on the held-out rooms (with
    predicted and with ground-truth semantics), one room in the benchmark format with PNG / HTML.

    Writes runs/demo-instance (or the folder given first after `--`; further arguments go to
    `ssen-instance demo`, e.g. `-- runs/x --max-iter 40`); an existing folder is refused, not
    clobbered (`-- DIR --resume DIR` continues it).
    """
    install_packages(session)
    args = list(session.posargs)
    has_out = bool(args) and not args[0].startswith("-")
    out = args.pop(0) if has_out else str(ROOT / "runs" / "demo-instance")
    session.run("ssen-instance", "demo", "--out", out, *args)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (READMEs, benchmarks, API reference from docstrings) into site/.

    `--strict`: any warning (a broken link, a missing page, a docstring griffe cannot read) fails.
    mkdocstrings reads the sources statically, so no package (and no torch) is installed.
    """
    session.install("-r", "requirements/docs.txt")
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"), *session.posargs)


@nox.session
def run(session: nox.Session) -> None:
    """One of the project's commands in a venv with every package: `nox -s run -- stseg-models ...`.

    The console scripts (`stseg-models`, `stseg-viz`, `stseg-train`, ...) live inside a virtual
    environment, not on the user's PATH; this session installs the packages once (the venv is
    reused afterwards) and runs the command given after `--` there, from the repository root.
    """
    scripts = _console_scripts()
    if not session.posargs or session.posargs[0] not in scripts:
        session.error(
            "name a command after `--`, e.g. `nox -s run -- stseg-models predict SCENE --weights W`;"
            f" commands: {', '.join(sorted(scripts))}"
        )
    install_packages(session)
    session.run(*session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks of every package (tables on stdout, JSON under bench-results/)."""
    install_packages(session)
    results = ROOT / "bench-results"
    results.mkdir(exist_ok=True)
    for folder in discover_packages():
        for script in sorted((folder / "benchmarks").glob("bench_*.py")):
            session.run(
                "python",
                str(script),
                "--json",
                str(results / f"{script.stem}.json"),
                *session.posargs,
            )


def _cuda_torch(session: nox.Session) -> list[str]:
    """[torch version, its CUDA version or "None", whether it sees a GPU] in the session's venv."""
    probe = (
        "try:\n import torch\n print(torch.__version__, torch.version.cuda, torch.cuda.is_available())"
        "\nexcept ImportError:\n print(0, None, False)"
    )
    output = str(session.run("python", "-c", probe, silent=True)).strip().splitlines()
    return output[-1].split()[:3]


@nox.session(venv_params=["--system-site-packages"])
def gpu(session: nox.Session) -> None:
    """GPU check in one call: CUDA tests, engine benchmark (fp32, bf16, fp16), batch-4 training step,
    the Triton kernels against the torch-ops path, and MinkowskiEngine 0.5.4's own tests (its CUDA
    tests included) on the native engine.

    About 10 minutes on an NVIDIA GPU after the install. The figures and the peak GPU memory go
    to bench-results/gpu_check.json (or the path given after `--`); beside it
    gpu_triton_conv.json, me_tests_native_cuda.json (outcome per test) and me_tests_cuda.json
    (counts beside real MinkowskiEngine's CPU run; a test passing there must pass here).

    Torch: a CUDA build already importable here (the venv sees the system's site packages) is
    used as it is; otherwise `STSEG_GPU_TORCH` (default `torch==2.13.0`: PyPI's Linux x86-64 wheel
    is the CUDA build) is installed, e.g. `STSEG_GPU_TORCH="torch==2.13.0+cu128
    --index-url https://download.pytorch.org/whl/cu128"`. The session stops if torch sees no GPU.
    """
    found = _cuda_torch(session)
    if found[1] == "None":
        session.install(*os.environ.get("STSEG_GPU_TORCH", "torch==2.13.0").split())
        found = _cuda_torch(session)
    version, cuda, visible = found
    if cuda == "None" or visible != "True":
        session.error(
            f"torch {version} (CUDA {cuda}) sees no GPU; set STSEG_GPU_TORCH to a CUDA build"
        )
    pin = Path(session.create_tmp()) / "gpu-constraints.txt"
    pin.write_text(f"torch=={version}\n")  # keep this CUDA build: no CPU pin, no reinstall
    editable = [arg for folder in discover_packages() for arg in ("-e", str(folder))]
    session.install("-c", str(pin), *editable, "-r", "requirements/test.txt")
    out = session.posargs[0] if session.posargs else str(ROOT / "bench-results" / "gpu_check.json")
    package = PACKAGES_DIR / "stseg-models"
    bench = package / "benchmarks"
    tool = str(package / "tools" / "run_me_tests.py")
    native = _beside(out, "me_tests_native_cuda")
    reference = str(bench / "results" / "me_tests_minkowski_cpu.json")
    parts = {
        "engine check": [str(bench / "gpu_check.py"), "--json", out, "--device", "cuda"],
        "triton kernels": [str(bench / "triton_conv.py"), "--json", _beside(out, "gpu_triton_conv")],
        # MinkowskiEngine 0.5.4's own tests with CUDA visible: its CUDA tests run natively here
        "ME tests run": [tool, "run", "--out", native, "--timeout", "60"],
        "ME tests compare": [tool, "compare", native, reference, "--summary",
                             _beside(out, "me_tests_cuda")],
    }  # fmt: skip
    session.install("-c", str(pin), "triton")  # CUDA builds of torch usually bring it already
    failed = []
    for name, args in parts.items():  # every part runs, so one call brings back every figure
        try:
            session.run("python", *args)
        except nox.command.CommandFailed:
            failed.append(name)
    if failed:
        session.error(f"failed: {', '.join(failed)} (figures written so far are kept)")


def _beside(path: str, stem: str) -> str:
    """A results file next to `path`, named `stem`.json."""
    return str(Path(path).with_name(f"{stem}.json"))


if __name__ == "__main__":
    sys.exit("run `nox -l` to list the sessions")
