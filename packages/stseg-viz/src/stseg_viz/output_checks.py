"""The checks every stseg-viz command runs on its --out before reading or drawing anything.

The project's output rule (`stseg_data.outputs`): an existing output is refused unless
`--overwrite` is given (exit 2), and a folder that cannot be written to is found before the work,
not after it (exit 1). The library functions themselves (`render_scene`, `write_viewer`, ...)
replace their output as they always did; these checks belong to the command line.
"""

from __future__ import annotations

from pathlib import Path

from stseg_data.outputs import check_writable, refuse_existing
from stseg_viz.errors import VizInputError


def check_file_output(out: Path, overwrite: bool) -> None:
    """`out` is a file to (re)write: not a folder, not existing unless `overwrite`, writable."""
    if out.is_dir():
        raise VizInputError(f"{out}: is a folder; --out names the file to write")
    refuse_existing(out, overwrite)
    check_writable(out.parent)


def check_folder_output(out: Path, overwrite: bool) -> None:
    """`out` is a folder to write into: not a file, empty or missing unless `overwrite`, writable."""
    if out.exists() and not out.is_dir():
        raise VizInputError(f"{out}: is a file; --out names the folder to write into")
    refuse_existing(out, overwrite, hint="pass --overwrite to write into it anyway")
    check_writable(out)
