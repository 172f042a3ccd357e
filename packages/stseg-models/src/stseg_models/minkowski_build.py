"""Build and install MinkowskiEngine 0.5.4 (CPU) for the running interpreter and PyTorch.

Recipe (DESIGN §3): MinkowskiEngine 0.5.4's ``setup.py`` needs ``numpy.distutils`` (numpy < 2) and
an old setuptools (< 60), and compiles against the *installed* torch, so it is built

1. in a separate virtual environment holding numpy<2, setuptools<60, wheel and ninja, which sees the
   running environment's torch through a ``.pth`` file (no second torch download, exact ABI match);
2. from the PyPI source distribution, without build isolation, with
   ``setup.py bdist_wheel --cpu_only --blas=openblas`` (Debian's ``libopenblas-dev`` required);
3. into a wheel cached under ``~/.cache/stseg/wheels/py<XY>-torch<version>/``, so a second install
   (another venv with the same Python and torch) is a plain ``pip install`` of that wheel.

The wheel is then installed into the running interpreter with ``pip install --no-deps``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stseg_models.sparse.errors import MinkowskiBuildError

ME_VERSION = "0.5.4"
BUILD_REQUIREMENTS = ("numpy<2", "setuptools<60", "wheel", "ninja")
OPENBLAS_HINTS = (
    "/usr/include/x86_64-linux-gnu/cblas.h",
    "/usr/include/cblas.h",
    "/usr/include/openblas/cblas.h",
)


@dataclass(frozen=True)
class InstallResult:
    """What `install_minkowski` did: the wheel path, whether it came from the cache, seconds spent."""

    wheel: Path
    cached: bool
    seconds: float


def default_cache_dir() -> Path:
    """``$STSEG_CACHE_DIR/wheels`` or ``~/.cache/stseg/wheels``."""
    base = os.environ.get("STSEG_CACHE_DIR")
    return Path(base) / "wheels" if base else Path.home() / ".cache" / "stseg" / "wheels"


def cache_key() -> str:
    """Wheel cache folder name: Python minor version and exact torch version."""
    import torch

    return f"py{sys.version_info.major}{sys.version_info.minor}-torch{torch.__version__.replace('+', '_')}"


def check_openblas() -> None:
    """Fail with a clear message unless Debian's libopenblas-dev (cblas.h + libopenblas) is present."""
    status = ""
    if shutil.which("dpkg-query"):
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", "libopenblas-dev"],
            capture_output=True,
            text=True,
            check=False,
        )
        status = proc.stdout
    if "install ok installed" in status or any(Path(p).exists() for p in OPENBLAS_HINTS):
        return
    raise MinkowskiBuildError(
        "the apt package libopenblas-dev is not installed (MinkowskiEngine links against OpenBLAS); "
        "install it with `sudo apt-get install libopenblas-dev` and run this command again"
    )


def _run(
    cmd: list[str],
    step: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log: Path | None = None,
) -> None:
    """Run a build step; on failure raise MinkowskiBuildError naming the step and the log tail."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        tail = ""
        if log and log.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise MinkowskiBuildError(f"{step} failed (exit {proc.returncode}); log {log}:\n{tail}")


def _torch_site_packages() -> Path:
    import torch

    return Path(torch.__file__).resolve().parent.parent


def make_build_env(root: Path, log: Path) -> Path:
    """Virtual environment with the old build toolchain that also sees the running torch; its python."""
    _run([sys.executable, "-m", "venv", str(root)], "creating the build environment", log=log)
    python = root / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    # appended after the env's own site-packages: numpy<2 / setuptools<60 installed here win
    (site / "stseg_runtime_torch.pth").write_text(f"{_torch_site_packages()}\n")
    _run(
        [str(python), "-m", "pip", "install", "--quiet", *BUILD_REQUIREMENTS],
        "installing numpy<2 setuptools<60",
        log=log,
    )
    return python


def fetch_sdist(python: Path, dest: Path, log: Path) -> Path:
    """Download MinkowskiEngine-0.5.4.tar.gz with the build environment's pip (honours pip's index config).

    Run inside the build environment because pip prepares the sdist's metadata, which imports
    numpy.distutils and torch.
    """
    cmd = [
        str(python),
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--no-build-isolation",
    ]
    _run(
        [*cmd, f"MinkowskiEngine=={ME_VERSION}", "-d", str(dest)],
        "downloading the MinkowskiEngine sdist",
        log=log,
    )
    found = sorted(dest.glob(f"MinkowskiEngine-{ME_VERSION}.tar.gz"))
    if not found:
        raise MinkowskiBuildError(
            f"pip download produced no MinkowskiEngine-{ME_VERSION}.tar.gz (see {log})"
        )
    return found[0]


def build_wheel(work: Path, jobs: int | None = None) -> Path:
    """Build the MinkowskiEngine wheel inside `work`; returns the wheel path."""
    log = work / "build.log"
    check_openblas()
    python = make_build_env(work / "buildenv", log)
    sdist = fetch_sdist(python, work, log)
    with tarfile.open(sdist) as tar:
        tar.extractall(work, filter="data")
    src = work / f"MinkowskiEngine-{ME_VERSION}"
    env = dict(os.environ, MAX_JOBS=str(jobs or os.cpu_count() or 1), CUDA_VISIBLE_DEVICES="")
    env.pop("PYTHONPATH", None)
    _run(
        [str(python), "setup.py", "bdist_wheel", "--cpu_only", "--blas=openblas"],
        "compiling MinkowskiEngine",
        cwd=src,
        env=env,
        log=log,
    )
    wheels = sorted((src / "dist").glob("MinkowskiEngine-*.whl"))
    if not wheels:
        raise MinkowskiBuildError(f"the build produced no wheel (see {log})")
    return wheels[-1]


def install_minkowski(
    cache_dir: Path | None = None, jobs: int | None = None, keep_build: bool = False
) -> InstallResult:
    """Install MinkowskiEngine 0.5.4 into the running interpreter, building the wheel once per cache key."""
    import time

    start = time.monotonic()
    folder = (cache_dir or default_cache_dir()) / cache_key()
    cached = sorted(folder.glob("MinkowskiEngine-*.whl"))
    from_cache = bool(cached)
    if cached:
        wheel = cached[-1]
    else:
        folder.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="stseg-me-build-"))
        try:
            built = build_wheel(work, jobs)
            wheel = folder / built.name
            tmp = folder / (built.name + ".part")
            shutil.copyfile(built, tmp)
            os.replace(tmp, wheel)  # atomic: a half-copied wheel is never picked up
        finally:
            if not keep_build:
                shutil.rmtree(work, ignore_errors=True)
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--force-reinstall",
            str(wheel),
        ],
        f"installing {wheel.name}",
    )
    check = "from stseg_models.sparse.backend import import_minkowski; import_minkowski()"
    proc = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise MinkowskiBuildError(
            f"MinkowskiEngine installed from {wheel} but does not import:\n{proc.stderr[-2000:]}"
        )
    return InstallResult(wheel=wheel, cached=from_cache, seconds=time.monotonic() - start)
