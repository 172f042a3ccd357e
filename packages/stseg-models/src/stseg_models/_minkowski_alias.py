"""``import MinkowskiEngine`` -> the native engine, for unmodified MinkowskiEngine code (opt-in).

Kept free of torch (and of `stseg_models.sparse`) so that the start-up hook
``stseg_minkowski_alias.pth`` costs nothing: that file runs `install_from_env` only when
``STSEG_MINKOWSKI_ALIAS`` is set to a true value (1, true, yes, on), and installing only adds a
finder to `sys.meta_path`; the engine is imported when a program imports ``MinkowskiEngine``.

What the alias resolves (only while no real MinkowskiEngine can be found -- a real installation is
never shadowed, and the check uses the other finders without importing anything; when a real one
is found, installing applies the ``collections.Sequence`` shim it needs on Python >= 3.10):

* ``MinkowskiEngine`` -> a module of its own whose attributes are those of `stseg_models.sparse`
  (so ``import MinkowskiEngine.MinkowskiOps`` binding ``MinkowskiOps`` on it, as Python does for
  any submodule, never changes `stseg_models.sparse`);
* ``MinkowskiEngine.<name>`` -> ``stseg_models.sparse.<name>`` when that is a module (``utils``,
  ``modules``, ``MinkowskiFunctional``...), deeper names likewise (``MinkowskiEngine.utils.collation``,
  ``MinkowskiEngine.modules.resnet_block``);
* the other ``MinkowskiEngine.Minkowski*`` submodules of 0.5.4 (``MinkowskiOps``,
  ``MinkowskiSparseTensor``, ``MinkowskiCommon``...) -> a proxy module that looks names up in the
  native module holding them, then in `stseg_models.sparse`;
* any other ``MinkowskiEngine.*`` name -> ModuleNotFoundError (nothing is loaded twice);
* once ``import MinkowskiEngine`` gave the alias, those submodule names import top-level too
  (``from MinkowskiOps import ...``, ``import utils``, ``from utils.gradcheck import ...``), as
  MinkowskiEngine 0.5.4's ``sys.path.append(<package folder>)`` makes them: the same module object
  as ``MinkowskiEngine.<name>``, served by a finder placed *last* on `sys.meta_path`, so -- as with
  an appended path entry -- a user's own ``utils`` (or any module of that name found by the other
  finders) always wins; only names MinkowskiEngine's folder holds are served, never the native
  engine's other files (``common``, ``ops``, ``errors``...), which a real path entry would expose.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from collections.abc import Sequence
from typing import Any

ENV_VAR = "STSEG_MINKOWSKI_ALIAS"
ALIAS = "MinkowskiEngine"
NATIVE = "stseg_models.sparse"
_TRUE = {"1", "true", "yes", "on"}
SUBPACKAGES = ("utils", "modules")

# MinkowskiEngine 0.5.4's submodules that user code imports by name -> native modules that hold
# (some of) their names, searched before the top-level package.
SUBMODULE_HOMES: dict[str, tuple[str, ...]] = {
    "MinkowskiBroadcast": ("stseg_models.sparse.broadcast",),
    "MinkowskiChannelwiseConvolution": ("stseg_models.sparse.channelwise",),
    "MinkowskiCommon": ("stseg_models.sparse.common",),
    "MinkowskiConvolution": ("stseg_models.sparse.conv",),
    "MinkowskiCoordinateManager": (
        "stseg_models.sparse.coordinate_manager",
        "stseg_models.sparse.gpu_settings",
    ),
    "MinkowskiFunctional": ("stseg_models.sparse.functional",),
    "MinkowskiInterpolation": ("stseg_models.sparse.interpolation",),
    "MinkowskiKernelGenerator": ("stseg_models.sparse.kernel", "stseg_models.sparse.kernel_region"),
    "MinkowskiNetwork": ("stseg_models.sparse.network",),
    "MinkowskiNonlinearity": ("stseg_models.sparse.nonlinearity",),
    "MinkowskiNormalization": ("stseg_models.sparse.norm",),
    "MinkowskiOps": ("stseg_models.sparse.ops",),
    "MinkowskiPooling": ("stseg_models.sparse.pooling",),
    "MinkowskiPruning": ("stseg_models.sparse.pruning",),
    "MinkowskiSparseTensor": ("stseg_models.sparse.tensor",),
    "MinkowskiTensor": ("stseg_models.sparse.modes",),
    "MinkowskiTensorField": ("stseg_models.sparse.field",),
    "MinkowskiUnion": ("stseg_models.sparse.union",),
    "diagnostics": ("stseg_models.sparse.diagnostics",),
    "sparse_matrix_functions": ("stseg_models.sparse.spmm",),
}


# What MinkowskiEngine 0.5.4's package folder holds, importable top-level after `import MinkowskiEngine`.
TOPLEVEL = frozenset((*SUBPACKAGES, *SUBMODULE_HOMES))
# MinkowskiEngine's compiled module, which its tests import directly
BACKEND = ("MinkowskiEngineBackend", "MinkowskiEngineBackend._C")


def _homes(modules: Sequence[str]) -> list[types.ModuleType]:
    found = []
    for name in (*modules, NATIVE):
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a missing dependency inside an existing module is a real error
                raise
    return found


class _ForwardingModule(types.ModuleType):
    """A module whose missing attributes are read from other modules, first match wins."""

    _stseg_sources: tuple[str, ...] = ()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name not in ("__all__", "__version__"):
            raise AttributeError(name)
        for home in _homes(self._stseg_sources):
            if hasattr(home, name):
                return getattr(home, name)
        raise AttributeError(f"module {self.__name__!r} (stseg alias) has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        for home in _homes(self._stseg_sources):
            names.update(n for n in dir(home) if not n.startswith("_"))
        return sorted(names)


def _forwarding_module(name: str, sources: tuple[str, ...], package: bool) -> _ForwardingModule:
    module = _ForwardingModule(name, f"stseg alias of {', '.join(sources) or NATIVE}")
    module._stseg_sources = sources
    if package:
        module.__path__ = []  # a package, so submodules can be imported; nothing is found on disk
    return module


class _ExistingModuleLoader(importlib.abc.Loader):
    """Hands out an already importable module under the alias name (one object, two names)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._spec: Any = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = importlib.import_module(self.target)
        self._spec = module.__spec__  # the import system overwrites __spec__; put it back below
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self._spec


class _ForwardingLoader(importlib.abc.Loader):
    def __init__(self, sources: tuple[str, ...], package: bool) -> None:
        self.sources = sources
        self.package = package

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _forwarding_module(spec.name, self.sources, self.package)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def _found_specs() -> list[importlib.machinery.ModuleSpec]:
    found = []
    for finder in sys.meta_path:
        if isinstance(finder, (MinkowskiAliasFinder, MinkowskiTopLevelFinder)) or not hasattr(
            finder, "find_spec"
        ):
            continue
        try:
            spec = finder.find_spec(ALIAS, None)
        except Exception:  # a third-party finder failing must not break the check
            continue
        if spec is not None:
            found.append(spec)
    return found


def _is_namespace(spec: importlib.machinery.ModuleSpec) -> bool:
    """A folder without ``__init__.py`` (an empty or leftover ``MinkowskiEngine/``), not an install."""
    return spec.origin in (None, "namespace") and spec.submodule_search_locations is not None


def real_minkowski_spec() -> importlib.machinery.ModuleSpec | None:
    """Spec of a real MinkowskiEngine on this interpreter's path (nothing is imported), else None.

    A bare ``MinkowskiEngine/`` folder (no ``__init__.py``: Python would import it as an empty
    namespace package) is not a real installation; `namespace_folders` names such folders.
    """
    return next((s for s in _found_specs() if not _is_namespace(s)), None)


def namespace_folders() -> list[str]:
    """``MinkowskiEngine/`` folders on the path that are not a package (no ``__init__.py``)."""
    return [
        str(folder)
        for spec in _found_specs()
        if _is_namespace(spec)
        for folder in (spec.submodule_search_locations or [])
    ]


def alias_active() -> bool:
    """True when ``MinkowskiEngine`` in `sys.modules` is this alias."""
    return isinstance(sys.modules.get(ALIAS), _ForwardingModule)


class MinkowskiAliasFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder serving ``MinkowskiEngine`` and its submodules from the native engine."""

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in BACKEND and alias_active():
            # ``import MinkowskiEngineBackend._C``: names the native engine has (ConvolutionMode...);
            # the C++ internals (quantize_np...) raise AttributeError naming the module
            return importlib.util.spec_from_loader(
                fullname, _ForwardingLoader((), package=fullname == BACKEND[0])
            )
        top = fullname.partition(".")[0]
        if top in TOPLEVEL and "." in fullname and _toplevel_alias(top):
            # a submodule of a top-level alias (``utils.gradcheck``): its MinkowskiEngine name
            return importlib.util.spec_from_loader(
                fullname, _ExistingModuleLoader(f"{ALIAS}.{fullname}")
            )
        if fullname == ALIAS:
            if real_minkowski_spec() is not None:
                return None  # never shadow a real installation
            return importlib.util.spec_from_loader(
                fullname, _ForwardingLoader((), package=True), is_package=True
            )
        if not fullname.startswith(ALIAS + ".") or not alias_active():
            return None
        parent_name, _, child = fullname.rpartition(".")
        parent = sys.modules.get(parent_name)
        if parent is None:
            return None
        if parent_name == ALIAS:
            # only MinkowskiEngine's own submodule names; other native modules stay unaliased
            native = sys.modules.get(NATIVE) or importlib.import_module(NATIVE)
            attr = getattr(native, child, None)
            if isinstance(attr, types.ModuleType) and (
                child in SUBPACKAGES or child in SUBMODULE_HOMES
            ):
                return importlib.util.spec_from_loader(
                    fullname, _ExistingModuleLoader(attr.__name__)
                )
            if child in SUBMODULE_HOMES:
                return importlib.util.spec_from_loader(
                    fullname, _ForwardingLoader(SUBMODULE_HOMES[child], package=False)
                )
            target_name = f"{NATIVE}.{child}" if child in SUBPACKAGES else ""
        elif isinstance(parent, _ForwardingModule):
            target_name = ""  # a proxy has no submodules
        else:
            target_name = f"{parent.__name__}.{child}"
        if target_name and importlib.util.find_spec(target_name) is not None:
            return importlib.util.spec_from_loader(fullname, _ExistingModuleLoader(target_name))
        raise ModuleNotFoundError(
            f"No module named {fullname!r} (MinkowskiEngine alias to {NATIVE}: no such module)",
            name=fullname,
        )


def _toplevel_alias(name: str) -> bool:
    """True when ``sys.modules[name]`` is the alias's ``MinkowskiEngine.<name>`` (same object)."""
    loaded = sys.modules.get(name)
    return loaded is not None and loaded is sys.modules.get(f"{ALIAS}.{name}")


class MinkowskiTopLevelFinder(importlib.abc.MetaPathFinder):
    """Last on `sys.meta_path`: top-level ``MinkowskiOps``, ``utils``... once the alias is imported.

    The stand-in for MinkowskiEngine 0.5.4's ``sys.path.append(<package folder>)``: asked only
    after every other finder found nothing, and only for the names that folder holds.
    """

    def find_spec(
        self, fullname: str, path: Any = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if path is not None or fullname not in TOPLEVEL or not alias_active():
            return None
        return importlib.util.spec_from_loader(
            fullname, _ExistingModuleLoader(f"{ALIAS}.{fullname}")
        )


def collections_shim() -> None:
    """Alias ``collections.Sequence`` & co. (gone in Python 3.10), which MinkowskiEngine 0.5.4 uses.

    The same shim as `stseg_models.sparse.backend.install_collections_shim`, kept here so the
    start-up hook stays torch-free.
    """
    import collections
    import collections.abc

    for name in ("Sequence", "Iterable", "Mapping", "MutableMapping"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def install() -> bool:
    """Add the finder (once). True when ``import MinkowskiEngine`` now gives the native engine.

    False when a real MinkowskiEngine is importable or already imported: it is left alone, and
    the collections shim is applied so that it imports on Python >= 3.10.
    """
    loaded = sys.modules.get(ALIAS)
    if loaded is not None and not isinstance(loaded, _ForwardingModule):
        if getattr(loaded, "__file__", None) is not None:
            return False
        # an empty namespace package imported from a bare folder: not MinkowskiEngine, replace it
        for name in [n for n in sys.modules if n == ALIAS or n.startswith(ALIAS + ".")]:
            del sys.modules[name]
        loaded = None
    folders = namespace_folders()
    if folders and real_minkowski_spec() is None:
        import warnings

        warnings.warn(
            f"ignoring {', '.join(folders)}: a MinkowskiEngine folder without __init__.py is not an "
            "installation; `import MinkowskiEngine` gives the stseg alias",
            UserWarning,
            stacklevel=3,
        )
    if not any(isinstance(f, MinkowskiAliasFinder) for f in sys.meta_path):
        # first, so that MinkowskiEngine.* submodules never reach the path finder (which would load
        # a second copy of a native file under the alias name)
        sys.meta_path.insert(0, MinkowskiAliasFinder())
    if not any(isinstance(f, MinkowskiTopLevelFinder) for f in sys.meta_path):
        sys.meta_path.append(MinkowskiTopLevelFinder())
    if loaded is None and real_minkowski_spec() is not None:
        collections_shim()
        return False
    return True


def uninstall() -> None:
    """Remove the finder and forget every aliased ``MinkowskiEngine*`` module (a real one stays)."""
    ours = (MinkowskiAliasFinder, MinkowskiTopLevelFinder)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, ours)]
    if alias_active():
        aliased = [n for n in sys.modules if n.partition(".")[0] in TOPLEVEL and _toplevel_alias(n)]
        for name in aliased:
            del sys.modules[name]
        for name in [n for n in sys.modules if n == ALIAS or n.startswith(ALIAS + ".")]:
            del sys.modules[name]
        for name in BACKEND:
            if isinstance(sys.modules.get(name), _ForwardingModule):
                del sys.modules[name]


def env_requested(environ: Any = None) -> bool:
    """True when ``$STSEG_MINKOWSKI_ALIAS`` is 1 / true / yes / on (any case)."""
    value = (os.environ if environ is None else environ).get(ENV_VAR, "")
    return value.strip().lower() in _TRUE


def install_from_env() -> bool:
    """`install` when ``$STSEG_MINKOWSKI_ALIAS`` asks for it (the ``.pth`` start-up hook calls this)."""
    return install() if env_requested() else False
