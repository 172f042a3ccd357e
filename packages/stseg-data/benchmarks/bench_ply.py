"""PLY read speed: the plyfile-based reader against the hand-written reader it replaced.

Run: python bench_ply.py [--json OUT.json] [--quick] [--points N] [--repeats R]

Both readers run in this process on the same files: a binary PLY of N points (x, y, z float32,
red, green, blue uchar, label ushort: the preprocessed scene format) and an ASCII PLY of the same
points. The old reader is not kept in the tree: it is taken from the git revision before its
deletion (`git show REV:path` into a temporary package `stseg_data_old`), so this needs a git
checkout; without one only the new reader is timed. plyfile's own ASCII reader (which the new
reader does not use for tables) is timed on a smaller file for reference.

Each figure is the median of R runs, with the min and max; old and new take turns in every round
(the machine may be shared).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import plyfile

from stseg_data.ply import read_ply, read_ply_elements, write_ply

OLD_FILES = ("ply.py", "ply_header.py", "ply_ascii.py")
SRC = "packages/stseg-data/src/stseg_data"


def load_old_reader(folder: Path):
    """The `ply` module of the revision before the hand-written parser was deleted, or None."""
    try:
        root = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()  # fmt: skip
        deleted = subprocess.run(["git", "rev-list", "-1", "HEAD", "--", f"{SRC}/ply_header.py"],
                                 capture_output=True, text=True, check=True, cwd=root).stdout.strip()  # fmt: skip
        if not deleted:
            return None
        package = folder / "stseg_data_old"
        package.mkdir()
        (package / "__init__.py").write_text("")
        for name in OLD_FILES:
            text = subprocess.run(["git", "show", f"{deleted}^:{SRC}/{name}"], capture_output=True,
                                  text=True, check=True, cwd=root).stdout  # fmt: skip
            for module in ("ply_ascii", "ply_header"):
                text = text.replace(f"stseg_data.{module}", f"stseg_data_old.{module}")
            (package / name).write_text(text)
    except (OSError, subprocess.CalledProcessError):
        return None
    sys.path.insert(0, str(folder))
    return importlib.import_module("stseg_data_old.ply")


def timings(fns: dict, repeats: int) -> dict:
    """{name: {median_s, min_s, max_s, runs_s}}; the functions take turns in every round, so a
    burst of load from other processes on a shared machine hits them alike."""
    values: dict = {name: [] for name in fns}
    for round_ in range(repeats):
        order = list(fns) if round_ % 2 == 0 else list(fns)[::-1]
        for name in order:
            start = time.perf_counter()
            fns[name]()
            values[name].append(time.perf_counter() - start)
    return {name: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v),
                   "runs_s": v} for name, v in values.items()}  # fmt: skip


def write_scene(folder: Path, n: int, binary: bool) -> Path:
    rng = np.random.default_rng(0)
    xyz = (rng.random((n, 3)) * [8, 8, 3]).astype(np.float32)
    rgb = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    label = rng.integers(0, 21, n).astype(np.uint16)
    path = folder / f"scene_{n}_{'bin' if binary else 'ascii'}.ply"
    write_ply(path, xyz, rgb, {"label": label}, binary=binary)
    return path


def same_cloud(a, b) -> bool:
    return (np.array_equal(a.xyz, b.xyz) and np.array_equal(a.rgb, b.rgb)
            and np.array_equal(a.labels, b.labels))  # fmt: skip


def compare(name: str, path: Path, old, repeats: int) -> dict:
    """read_ply (file -> PointCloud) and read_ply_elements (the parse alone), old and new."""
    result: dict = {"file": name, "bytes": path.stat().st_size}
    for what, new_fn, old_fn in (
        ("read_ply", read_ply, old and old.read_ply),
        ("read_ply_elements", read_ply_elements, old and old.read_ply_elements),
    ):
        fns = {"new": functools.partial(new_fn, path)}
        if old_fn is not None:
            fns["old"] = functools.partial(old_fn, path)
        entry: dict = timings(fns, repeats)
        if old_fn is not None:
            if what == "read_ply":
                entry["same_result"] = same_cloud(read_ply(path), old_fn(path))
            entry["new_over_old"] = entry["new"]["median_s"] / entry["old"]["median_s"]
        result[what] = entry
    return result


def _load() -> dict:
    """The machine's state beside the figures: on a shared machine absolute times depend on it."""
    one, five, _ = os.getloadavg()
    return {"loadavg_1min": round(one, 2), "loadavg_5min": round(five, 2), "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="200 k points, 3 repeats")
    parser.add_argument("--points", type=int, default=None, help="default 5,000,000")
    parser.add_argument("--repeats", type=int, default=None, help="default 5 (binary), 3 (ASCII)")
    args = parser.parse_args()
    n = args.points or (200_000 if args.quick else 5_000_000)
    repeats = args.repeats or (3 if args.quick else 5)
    report: dict = {"points": n, "python": platform.python_version(),
                    "numpy": np.__version__, "plyfile": metadata.version("plyfile")}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        old = load_old_reader(folder)
        report["old_reader"] = "git revision before the deletion" if old else "unavailable"
        binary = write_scene(folder, n, binary=True)
        report["binary"] = compare("binary_little_endian", binary, old, repeats)
        binary.unlink()
        ascii_path = write_scene(folder, n, binary=False)
        report["ascii"] = compare("ascii", ascii_path, old, args.repeats or 3)
        ascii_path.unlink()
        small = write_scene(folder, min(n, 200_000), binary=False)
        report["plyfile_own_ascii_reader"] = {
            "points": min(n, 200_000),
            **timings({"plyfile": lambda: plyfile.PlyData.read(str(small))}, 1)["plyfile"],
        }
    print(json.dumps(report, indent=2))
    if args.json:
        report["load"] = _load()
        report["repeats"] = repeats
        # sorted keys, fixed indent: the layout never changes between runs (the README test reads it)
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
