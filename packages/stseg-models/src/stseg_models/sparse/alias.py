"""Opt-in alias: ``import MinkowskiEngine`` gives this engine when MinkowskiEngine is not installed.

Two ways to switch it on:

* in code, before the import: ``stseg_models.sparse.install_alias()``;
* for unmodified scripts: ``STSEG_MINKOWSKI_ALIAS=1 python train.py`` -- the stseg-models wheel
  ships a ``stseg_minkowski_alias.pth`` start-up hook that installs the alias when the variable is
  1 / true / yes / on, and does nothing else (no torch import) otherwise.

A real MinkowskiEngine installation always wins: the alias answers only when no other importer can
find ``MinkowskiEngine`` (checked without importing it). ``MinkowskiEngine.utils``,
``MinkowskiEngine.modules.*``, ``MinkowskiEngine.MinkowskiFunctional``, ``MinkowskiEngine.MinkowskiOps``
and MinkowskiEngine 0.5.4's other ``Minkowski*`` submodules resolve too; see
`stseg_models._minkowski_alias` for the rules.

Editable installs (``pip install -e``) do not carry the start-up hook (poetry-core's editable wheel
holds only its path file); there, run a script through the alias with
``python -m stseg_models.sparse.alias script.py [args...]``.
"""

from __future__ import annotations

import runpy
import sys

from stseg_models._minkowski_alias import (
    ENV_VAR,
    alias_active,
    install,
    real_minkowski_spec,
    uninstall,
)

ALIAS_ENV_VAR = ENV_VAR


def install_alias() -> bool:
    """Make ``import MinkowskiEngine`` resolve to `stseg_models.sparse` unless a real one exists.

    Returns True when the alias is in effect, False when a real MinkowskiEngine is importable or
    already imported (then nothing changes). Calling it again is harmless.
    """
    return install()


def uninstall_alias() -> None:
    """Remove the alias and forget the aliased ``MinkowskiEngine*`` modules (a real one stays)."""
    uninstall()


def minkowski_alias_active() -> bool:
    """True when ``sys.modules['MinkowskiEngine']`` is the alias of this engine."""
    return alias_active()


def real_minkowski_installed() -> bool:
    """True when a real MinkowskiEngine is on the path (found, not imported)."""
    return real_minkowski_spec() is not None


def run_script(argv: list[str]) -> None:
    """Run ``argv[0]`` as ``__main__`` with ``sys.argv = argv``, the alias installed first."""
    if not argv:
        raise SystemExit("usage: python -m stseg_models.sparse.alias SCRIPT.py [ARGS...]")
    install_alias()
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    run_script(sys.argv[1:])
