"""Where pip should get the pinned CPU build of PyTorch from (used by noxfile.py).

`constraints/cpu.txt` pins `torch==X+cpu`. PyPI holds no `+cpu` versions (its Linux x86-64 wheel
is the CUDA build, several GB), so the pin is satisfiable only from the PyTorch CPU index or from
a local `+cpu` wheel in one of pip's find-links folders. `choose_torch_source` decides from those
two facts alone; the functions around it gather the facts (a short network probe, pip's config).
"""

from __future__ import annotations

import re
import shlex
import threading
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
_TORCH_LINE = re.compile(r"^\s*torch\s*==\s*(?P<version>[^\s;#]+)", re.MULTILINE)


@dataclass(frozen=True)
class TorchSource:
    """The torch constraint to use, the pip arguments that make it installable, and why."""

    pin: str
    pip_args: tuple[str, ...]
    message: str


def read_pin(constraints_text: str) -> str:
    """The `torch==...` line of a constraints file (ValueError when there is none)."""
    found = _TORCH_LINE.search(constraints_text)
    if found is None:
        raise ValueError("the constraints file has no `torch==VERSION` line")
    return f"torch=={found['version']}"


def with_pin(constraints_text: str, pin: str) -> str:
    """The constraints text with its torch line replaced by `pin` (other lines kept)."""
    read_pin(constraints_text)  # refuse a file without a torch line rather than add one silently
    return _TORCH_LINE.sub(pin, constraints_text, count=1)


def choose_torch_source(
    pin: str, index_reachable: bool, local_versions: Iterable[str], index_url: str = CPU_INDEX
) -> TorchSource:
    """Pick the source for `pin` (e.g. `torch==2.13.0+cpu`).

    1. the PyTorch CPU index answers: add it as an extra index (pip then finds `+cpu` there);
    2. it does not, but a local wheel of exactly that version is in find-links: no extra index
       (an unreachable one would make pip retry it for minutes), the local wheel serves the pin;
    3. neither: the plain public version (`torch==2.13.0`), which on Linux x86-64 is PyPI's CUDA
       build; the message says so.
    """
    wanted = Version(pin.split("==", 1)[1])
    if not wanted.local:
        return TorchSource(pin, (), f"{pin}: no local build label, installed as pinned")
    if index_reachable:
        return TorchSource(pin, ("--extra-index-url", index_url), f"{pin} from {index_url}")
    if any(_same_version(v, wanted) for v in local_versions):
        return TorchSource(
            pin, (), f"{index_url} unreachable; {pin} from a local wheel in pip's find-links"
        )
    public = f"torch=={wanted.public}"
    return TorchSource(
        public,
        (),
        f"{index_url} unreachable and no local {pin} wheel in pip's find-links: falling back to "
        f"{public}, which on Linux x86-64 is PyPI's CUDA build (several GB)",
    )


def _same_version(text: str, wanted: Version) -> bool:
    try:
        return Version(text) == wanted
    except InvalidVersion:
        return False


def find_links_folders(pip_config_list: str) -> list[Path]:
    """Local folders named by `find-links` in the output of `pip config list` (URLs skipped)."""
    folders: list[Path] = []
    for line in pip_config_list.splitlines():
        key, sep, value = line.partition("=")
        if not sep or not key.strip().endswith("find-links"):
            continue
        for entry in shlex.split(value.strip().strip("'\"")):
            if entry.startswith("file://"):
                entry = entry[len("file://") :]
            if "://" not in entry and Path(entry) not in folders:
                folders.append(Path(entry))
    return folders


def torch_wheel_versions(filenames: Iterable[str], supported: Iterable[Tag]) -> list[str]:
    """Versions of the torch wheels among `filenames` that this interpreter can install."""
    tags = set(supported)
    versions: list[str] = []
    for filename in filenames:
        try:
            name, version, _, wheel_tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        if name == canonicalize_name("torch") and wheel_tags & tags:
            versions.append(str(version))
    return versions


def index_reachable(url: str = CPU_INDEX, timeout: float = 3.0) -> bool:
    """Whether `url` answers within `timeout` seconds (name lookup included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            request = urllib.request.Request(f"{url}/torch/", method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout) as response:
                result.append(response.status < 400)
        except (OSError, ValueError):
            result.append(False)

    # urlopen's timeout does not bound the name lookup; a daemon thread bounds the whole probe.
    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 1.0)
    return bool(result and result[0])
