"""The main job's figures as a results file: a finished `nox -s demo` run -> JSON for the README.

    python demo_figures.py RUN --json OUT.json [--note TEXT]

RUN is the folder `stseg-train synthetic --out RUN` (or `nox -s demo -- RUN`) wrote. The demo takes
minutes, so the README test cannot re-run it; this copies what the run measured (validation mIoU
on points and on voxels, accuracies, per-class IoU, iterations, seconds) from RUN/metrics.json and
RUN/summary.json, with the machine's load at the time of copying and no path of this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any


def demo_figures(metrics: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The figures a README shows, from a demo run's metrics.json and summary.json (pure)."""
    voxels = metrics.get("voxels", {})
    return {
        "benchmark": "stseg-train synthetic (nox -s demo): validation on the 20 held-out rooms",
        "iterations": summary["iterations"],
        "val_miou_points": metrics["miou"],
        "val_mean_accuracy_points": metrics["mean_accuracy"],
        "val_overall_accuracy_points": metrics["overall_accuracy"],
        "val_miou_voxels": voxels.get("miou"),
        "val_rotations": metrics.get("rotations"),
        "per_class_iou_points": {k: v.get("iou") for k, v in metrics.get("per_class", {}).items()},
        "seconds_data": summary["seconds_data"],
        "seconds_train_and_eval": summary["seconds_train_and_eval"],
        "seconds_total": round(summary["seconds_data"] + summary["seconds_train_and_eval"], 1),
    }


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"Error: {path}: not found (is this a finished demo run?)") from None
    except json.JSONDecodeError as err:
        raise SystemExit(f"Error: {path}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise SystemExit(f"Error: {path}: not a JSON object")
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished demo run folder")
    parser.add_argument("--json", type=Path, required=True, help="write the figures here")
    parser.add_argument("--note", default="", help="how the run was taken (machine, load, threads)")
    args = parser.parse_args()
    try:
        figures = demo_figures(_read(args.run / "metrics.json"), _read(args.run / "summary.json"))
    except KeyError as err:
        raise SystemExit(f"Error: {args.run}: the run's files lack {err}") from None
    # the arithmetic the run trained and validated in (runs before `precision` existed: fp32)
    figures["precision"] = _read(args.run / "config.json").get("precision", "fp32")
    one, five, _ = os.getloadavg()
    figures["load_when_copied"] = {"loadavg_1min": round(one, 2), "loadavg_5min": round(five, 2)}
    figures["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count()}
    figures["note"] = args.note
    # sorted keys, fixed indent: the layout never changes between runs (the README test reads it)
    args.json.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: figures[k] for k in ("val_miou_points", "seconds_total")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
