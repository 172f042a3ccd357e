"""Sessions for the stseg monorepo. `nox -l` lists them; `nox -s NAME` runs one.

Every session installs the packages under `packages/*` (discovered, in dependency order) with pip,
editable, into its own virtual environment, with the pins of `constraints/cpu.txt`. That file pins
the CPU build of PyTorch: an unpinned `torch` pulls several GB of CUDA packages.

GPU users: point `STSEG_CONSTRAINTS` at a constraints file of your own (for example one line
`torch==2.13.0+cu128`, with `PIP_EXTRA_INDEX_URL` naming the matching PyTorch index), or set
`STSEG_CONSTRAINTS=none` to let pip resolve torch freely.
"""

from __future__ import annotations

import os
import re
import sys
import zipfile
from pathlib import Path

import nox
import tomllib

ROOT = Path(__file__).resolve().parent
PACKAGES_DIR = ROOT / "packages"

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


def _constraint_args() -> list[str]:
    choice = os.environ.get("STSEG_CONSTRAINTS", str(ROOT / "constraints" / "cpu.txt"))
    return [] if choice.lower() == "none" else ["-c", choice]


def install_packages(session: nox.Session, *extra: str, packages: list[Path] | None = None) -> None:
    """Install `packages` (default: all) editable, in dependency order, plus `extra` requirements."""
    chosen = packages if packages is not None else discover_packages()
    editable = [arg for folder in chosen for arg in ("-e", str(folder))]
    session.install(*_constraint_args(), *editable, *extra)


def _console_scripts() -> dict[str, str]:
    scripts: dict[str, str] = {}
    for folder in discover_packages():
        for name, target in _read_project(folder).get("scripts", {}).items():
            scripts[name] = target.split(".", 1)[0]
    return scripts


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests (CPU; GPU-marked tests skip without CUDA)."""
    install_packages(session, "-r", "requirements/test.txt")
    session.env.setdefault("OMP_NUM_THREADS", "2")
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


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the packages and the noxfile."""
    session.install("-r", "requirements/lint.txt")
    session.run("ruff", "check", "packages", "noxfile.py", "conftest.py")
    session.run("ruff", "format", "--check", "packages", "noxfile.py", "conftest.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on each package's src/ tree."""
    install_packages(session, "-r", "requirements/lint.txt")
    for folder in discover_packages():
        session.run("mypy", str(folder / "src"))


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


@nox.session
def wheels(session: nox.Session) -> None:
    """Build all five wheels; fail if any Requires-Dist holds a path or a URL."""
    outdir = build_wheels(session)
    bad: list[str] = []
    for folder in discover_packages():
        name = _read_project(folder)["name"].replace("-", "_")
        version = _read_project(folder)["version"]
        wheel = next(outdir.glob(f"{name}-{version}-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            metadata = archive.read(f"{name}-{version}.dist-info/METADATA").decode()
        for line in metadata.splitlines():
            if line.startswith("Requires-Dist:") and re.search(r"@|file:|://|\.\./", line):
                bad.append(f"{wheel.name}: {line}")
        session.log(f"{wheel.name}: metadata has no paths or URLs")
    if bad:
        session.error("wheel metadata holds paths or URLs:\n" + "\n".join(bad))


@nox.session(reuse_venv=False)
def standalone(session: nox.Session) -> None:
    """A fresh venv with only the stseg-models wheel (and what it pulls in) runs `predict`."""
    outdir = build_wheels(session)
    session.install(*_constraint_args(), "--find-links", str(outdir), "stseg-models")
    installed = session.run("python", "-m", "pip", "list", "--format=freeze", silent=True) or ""
    names = {line.split("==")[0].lower() for line in str(installed).splitlines()}
    unwanted = names & {"stseg-train", "ssen-instance", "stseg-viz"}
    if unwanted or "stseg-data" not in names:
        session.error(
            f"stseg-models pulled in {sorted(unwanted)}; stseg-data present: {'stseg-data' in names}"
        )
    workdir = Path(session.create_tmp()) / "standalone"
    session.run(
        "python",
        str(PACKAGES_DIR / "stseg-models" / "tests" / "standalone_predict_check.py"),
        str(workdir),
    )


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
    clobbered (`-- DIR --resume` continues it).
    """
    install_packages(session)
    args = list(session.posargs)
    has_out = bool(args) and not args[0].startswith("-")
    out = args.pop(0) if has_out else str(ROOT / "runs" / "demo-instance")
    session.run("ssen-instance", "demo", "--out", out, *args)


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
    """GPU check in one call: CUDA tests, engine benchmark (fp32, bf16, fp16), batch-4 training step.

    About 5 minutes on an NVIDIA GPU after the install. Every figure and the peak GPU memory go
    to bench-results/gpu_check.json (or the path given after `--`).

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
    script = PACKAGES_DIR / "stseg-models" / "benchmarks" / "gpu_check.py"
    session.run("python", str(script), "--json", out, "--device", "cuda")


if __name__ == "__main__":
    sys.exit("run `nox -l` to list the sessions")
