"""Benchmark: render a 1 M-point scene to PNG (target < 10 s on 2 cores), and write the viewer.

    python bench_viz.py --json OUT.json [--quick]

Times `render_scene` end to end (PLY read, colouring, z-buffer, PNG) and its stages, and compares
the z-buffer with the naive reference timed in the same process: depth-sorted matplotlib `scatter`
of the same points into the same image size. --quick uses 200 k points.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from stseg_data.ply import write_ply
from stseg_viz._toy import toy_room
from stseg_viz.colorize import colorize_labels
from stseg_viz.palettes import get_palette
from stseg_viz.raster import rasterize, view_rotation
from stseg_viz.render import render_scene
from stseg_viz.viewer import write_viewer


def _time(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _scatter_reference(xyz: np.ndarray, colors: np.ndarray) -> None:
    """The obvious way: sort by depth, scatter every point with matplotlib, save a PNG."""
    cam = (xyz - xyz.mean(0)) @ view_rotation("iso").T
    order = np.argsort(cam[:, 2])  # far first, near drawn last
    figure = Figure(figsize=(10, 8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.scatter(
        cam[order, 0], cam[order, 1], c=colors[order] / 255.0, s=1, marker="s", linewidths=0
    )
    axes.set_axis_off()
    figure.savefig(io.BytesIO(), format="png")


def _load() -> dict:
    """The machine's state beside the figures: on a shared machine absolute times depend on it."""
    one, five, _ = os.getloadavg()
    return {"loadavg_1min": round(one, 2), "loadavg_5min": round(five, 2), "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 200_000 if args.quick else 1_000_000

    cloud = toy_room(n, seed=0)
    colors = colorize_labels(cloud.labels, get_palette("scannet20"))
    with tempfile.TemporaryDirectory() as folder:
        scene = Path(folder) / "scene.ply"
        write_ply(scene, cloud.xyz, cloud.rgb, extra={"label": cloud.labels.astype(np.int32)})
        results = {
            "points": n,
            "render_scene_label_s": _time(
                lambda: render_scene(scene, Path(folder) / "r.png", color_by="label"), repeat=2
            ),
            "rasterize_only_s": _time(lambda: rasterize(cloud.xyz, colors, view="iso"), repeat=2),
            "viewer_html_s": _time(
                lambda: write_viewer(scene, Path(folder) / "v.html", max_points=n)
            ),
            "viewer_html_mb": (Path(folder) / "v.html").stat().st_size / 1e6,
            "scatter_reference_s": _time(lambda: _scatter_reference(cloud.xyz, colors)),
        }
    results["speedup_vs_scatter"] = results["scatter_reference_s"] / results["rasterize_only_s"]
    results["target_s"] = 10.0
    results["meets_target"] = results["render_scene_label_s"] < 10.0
    results["machine"] = {"python": platform.python_version(), "cpus": _cpus()}

    print(f"{'measure':<24}{'value':>12}")
    for key, value in results.items():
        if isinstance(value, float):
            print(f"{key:<24}{value:>12.3f}")
        elif not isinstance(value, dict):
            print(f"{key:<24}{value!s:>12}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    results["load"] = _load()
    results["quick"] = args.quick
    # sorted keys, fixed indent: the layout never changes between runs (the README test reads it)
    args.json.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def _cpus() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


if __name__ == "__main__":
    main()
