"""The settings of an `ssen-instance demo` (DIR/demo.json): defaults, checks, and `--resume`."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from ssen_instance.errors import InstanceInputError
from stseg_data.atomic import atomic_write
from stseg_data.outputs import check_writable

SETTINGS_FILE = "demo.json"
# Everything a demo writes in its folder (`ssen_instance.demo`'s stages, ledger and metrics):
# `--overwrite` removes these and nothing else, so a file the user put there survives.
DEMO_ENTRIES = ("data", "semantic", "scenes", "scenes.partial", "instance", "eval", "example",
                "example.partial", "stages.json", "metrics.json", SETTINGS_FILE)  # fmt: skip
# Settings that may differ when a demo is resumed: they change how fast it runs, not what it makes.
RUNTIME_SETTINGS = ("threads", "progress")


@dataclasses.dataclass(frozen=True)
class DemoSettings:
    """What a demo makes. None: the recipe's value (rooms: the semantic main job's 100)."""

    rooms: int | None = None
    semantic_weights: str | None = None
    semantic_max_iter: int | None = None
    semantic_sets: tuple[str, ...] = ()  # extra `stseg-train --set KEY=VALUE` of the semantic job
    recipe: str = "synthetic-cpu"
    max_iter: int | None = None
    save_freq: int | None = None
    strategy: str = "cell"
    precision: str = "fp32"  # both trainings and every evaluation: fp32, or bf16 / fp16 autocast
    threads: int | None = None
    view: bool = True
    progress: bool = True  # bars with ETA; off: log lines (for logs that are files, not terminals)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["semantic_sets"] = list(self.semantic_sets)
        return out


def open_demo_dir(
    run: Path, given: dict[str, Any], *, resume: bool, overwrite: bool = False
) -> DemoSettings:
    """The settings of the demo in `run` (new: `given` on the defaults; resumed: the saved ones).

    A new demo refuses an existing non-empty folder unless `overwrite`, which replaces an earlier
    demo (a folder with demo.json: its `DEMO_ENTRIES` are removed once every check passed) and
    nothing else. `--resume` needs a demo folder, and refuses settings given now that differ from
    the saved ones (they would not make the same demo), except the `RUNTIME_SETTINGS`. The folder
    is checked writable before anything is written.
    """
    if resume and overwrite:
        raise InstanceInputError(
            "--resume continues the demo, --overwrite starts it again: pass one of them"
        )
    given = {k: v for k, v in given.items() if v is not None}
    if "semantic_sets" in given:
        given["semantic_sets"] = tuple(given["semantic_sets"])
    if "semantic_weights" in given:
        given["semantic_weights"] = str(Path(given["semantic_weights"]).resolve())
    saved_path = run / SETTINGS_FILE
    if not resume:
        existing = run.exists() and (not run.is_dir() or any(run.iterdir()))
        if existing and not overwrite:
            raise InstanceInputError(
                f"{run}: already exists; pass --resume {run} to continue that demo, --overwrite to "
                "start it again, or choose another --out"
            )
        if existing and not saved_path.is_file():
            raise InstanceInputError(
                f"{run}: already exists and is not a demo folder (no {SETTINGS_FILE}); "
                "--overwrite replaces only an earlier demo: choose another --out"
            )
        settings = DemoSettings(**given)
        _check(settings)
        if existing:
            _check_kept_inputs(run, settings)
        check_writable(run)
        if existing:
            remove_demo(run)
        run.mkdir(parents=True, exist_ok=True)
        with atomic_write(saved_path, "w") as handle:
            json.dump(settings.to_dict(), handle, indent=2)
        return settings
    if not saved_path.is_file():
        raise InstanceInputError(f"--resume {run}: not a demo folder (no {SETTINGS_FILE})")
    check_writable(run)
    try:
        saved = json.loads(saved_path.read_text())
        saved["semantic_sets"] = tuple(saved.get("semantic_sets", ()))
        settings = DemoSettings(**saved)
    except (json.JSONDecodeError, TypeError) as error:
        raise InstanceInputError(f"{saved_path}: unreadable demo settings ({error})") from None
    changed = [
        f"--{key.replace('_', '-')} {value!r} (the demo has {getattr(settings, key)!r})"
        for key, value in given.items()
        if key not in RUNTIME_SETTINGS and getattr(settings, key) != value
    ]
    if changed:
        raise InstanceInputError(
            f"--resume {run}: settings differ from the demo's: {'; '.join(changed)}"
        )
    runtime = {key: given[key] for key in RUNTIME_SETTINGS if key in given}
    return dataclasses.replace(settings, **runtime)


def remove_demo(run: Path) -> None:
    """Remove what an earlier demo wrote in `run` (`DEMO_ENTRIES`), nothing else."""
    for name in DEMO_ENTRIES:
        entry = run / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()


def _check_kept_inputs(run: Path, settings: DemoSettings) -> None:
    """A checkpoint the new demo reuses must not be one of the files `--overwrite` removes."""
    if not settings.semantic_weights:
        return
    weights = Path(settings.semantic_weights).resolve()
    for name in DEMO_ENTRIES:
        if weights.is_relative_to((run / name).resolve()):
            raise InstanceInputError(
                f"--semantic-weights {settings.semantic_weights}: inside the demo that "
                "--overwrite would remove; copy it out of the folder first"
            )


def _check(settings: DemoSettings) -> None:
    from ssen_instance.grouping import STRATEGIES
    from ssen_instance.train import RECIPES
    from stseg_models.precision import PRECISIONS

    if settings.recipe not in RECIPES:
        raise InstanceInputError(
            f"--recipe {settings.recipe}: unknown; choose one of {', '.join(RECIPES)}"
        )
    if settings.precision not in PRECISIONS:
        raise InstanceInputError(f"--precision {settings.precision}: choose fp32, bf16 or fp16")
    if settings.strategy not in STRATEGIES:
        raise InstanceInputError(
            f"--strategy {settings.strategy}: unknown; choose one of {', '.join(STRATEGIES)}"
        )
    for name in ("rooms", "semantic_max_iter", "max_iter", "save_freq", "threads"):
        value = getattr(settings, name)
        if value is not None and value < 1:
            raise InstanceInputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if settings.rooms is not None and settings.rooms < 5:
        raise InstanceInputError(
            f"--rooms {settings.rooms}: needs at least 5 (one room in five is held out)"
        )
    if settings.semantic_weights and not Path(settings.semantic_weights).is_file():
        raise InstanceInputError(f"--semantic-weights {settings.semantic_weights}: file not found")
