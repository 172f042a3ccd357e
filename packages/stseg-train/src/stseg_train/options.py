"""The typed sections of a `TrainConfig` and the one parser every config value goes through.

A config is flat fields (lr, batch_size, ...) plus sections, each a frozen dataclass:

- `runtime` (`RuntimeOptions`): how this machine runs the job; none of it changes the model;
- `toy` (`ToyOptions`): the toy components' data (tests and examples, `stseg_train.toy`);
- `task_options`: a task's own section (e.g. ssen-instance's), kept as a mapping here because
  stseg-train does not know its fields: the task declares a dataclass and reads the mapping into
  it with `read_task_options(config, task, kind)`, writes it with `with_task_options`.

`parse_options(kind, values, where)` turns a mapping (YAML, TOML, JSON, `--set`) into a section:
an unknown key or a value of the wrong type is one `TrainInputError` naming the key (`where` says
which file or option it came from). No registry: the task passes its dataclass type in.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from stseg_train.errors import TrainInputError

if TYPE_CHECKING:
    from stseg_train.config import TrainConfig

T = TypeVar("T")

DEVICES = ("auto", "cpu", "cuda")
HEAP_MODES = ("trim", "retain")


@dataclasses.dataclass(frozen=True)
class RuntimeOptions:
    """How the trainer runs on this machine (`--set runtime.KEY=VALUE`)."""

    # "auto": CUDA when torch sees a GPU, else the CPU; "cpu" even where a GPU is visible
    device: str = "auto"
    # glibc heap after each step: "trim" returns freed pages every `heap_trim_every` steps (0 =
    # never); "retain" keeps them for reuse (faster steps, memory at its peak; `stseg_train.heap`)
    heap_mode: str = "trim"
    heap_trim_every: int = 1
    # keep loaded scenes in memory; None = the dataset's default (on for `synthetic` only)
    cache_scenes: bool | None = None
    # resume a checkpoint written mid-epoch with another number of processes (the epoch's
    # remaining order is reshuffled)
    allow_reshard: bool = False

    def problems(self) -> list[str]:
        """What is out of range, one message per field (empty when every value is usable)."""
        found = []
        if self.device not in DEVICES:
            found.append(f"runtime.device must be auto, cpu or cuda, found {self.device!r}")
        if self.heap_mode not in HEAP_MODES:
            found.append(
                f"runtime.heap_mode must be one of {', '.join(HEAP_MODES)}, found "
                f"{self.heap_mode!r}"
            )
        if self.heap_trim_every < 0:
            found.append(
                "runtime.heap_trim_every must be an integer >= 0 (0 = never), found "
                f"{self.heap_trim_every!r}"
            )
        return found


@dataclasses.dataclass(frozen=True)
class ToyOptions:
    """The toy components' generated scenes (`stseg_train.toy`; `--set toy.KEY=VALUE`)."""

    scenes: int = 8
    points: int = 64  # per scene
    bn: bool = True  # the toy network has a batch norm
    ignore: float = 0.05  # share of points labelled ignore

    def problems(self) -> list[str]:
        found = []
        if self.scenes < 1 or self.points < 1:
            found.append(
                f"toy.scenes and toy.points must be >= 1, found {self.scenes}, {self.points}"
            )
        if not 0.0 <= self.ignore < 1.0:
            found.append(f"toy.ignore must be in [0, 1), found {self.ignore!r}")
        return found


def _type_name(kind: Any) -> str:
    return getattr(kind, "__name__", None) or str(kind)


def coerce(key: str, value: Any, kind: Any, where: str) -> Any:
    """`value` (from YAML, TOML, JSON or a --set string) as type `kind`; raises naming `key`.

    bool takes true/false (and yes/no, on/off, 1/0 as strings), never a number other than 0/1;
    int refuses booleans and fractions; a nested dataclass takes a mapping (`parse_options`).
    """
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce(key, value, inner, where)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, Mapping):
            raise TrainInputError(
                f"{where}: config key {key!r}: expected a mapping of {_type_name(kind)} keys, "
                f"found {value!r}"
            )
        return parse_options(kind, value, where, prefix=f"{key}.")
    try:
        if kind is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
                return bool(value)
            raise ValueError(value)
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind is str:
            if isinstance(value, (Mapping, list, tuple)):
                raise ValueError(value)
            return str(value)
        if origin in (tuple, list):
            numbers = bool(args) and all(a in (int, float, Ellipsis) for a in args)
            if isinstance(value, (list, tuple)):
                items = value
            elif numbers and isinstance(value, str):  # `--set adam_betas=0.8,0.9`
                items = yaml.safe_load(f"[{value}]")
            else:  # a lone string is not a list of strings
                raise ValueError(value)
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                if len(items) != len(args):
                    raise ValueError(value)
                kinds = list(args)
            else:
                kinds = [args[0] if args else Any] * len(items)
            out = [coerce(f"{key}[{i}]", v, k, where) for i, (v, k) in enumerate(zip(items, kinds))]
            return tuple(out) if origin is tuple else out
        if origin is dict or kind is dict:
            if not isinstance(value, Mapping):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError, yaml.YAMLError):
        raise TrainInputError(
            f"{where}: config key {key!r}: expected {_type_name(kind)}, found {value!r}"
        ) from None
    return value


def field_types(kind: type) -> dict[str, Any]:
    """Field name -> declared type of dataclass `kind` (annotations resolved)."""
    hints = typing.get_type_hints(kind)
    return {f.name: hints[f.name] for f in dataclasses.fields(kind)}


def _unknown(where: str, prefix: str, unknown: list[str], known: typing.Iterable[str]) -> str:
    return (
        f"{where}: unknown config key(s) {', '.join(prefix + k for k in unknown)}; known keys"
        f"{' of ' + prefix.rstrip('.') if prefix else ''}: {', '.join(sorted(known))}"
    )


def parse_options(kind: type[T], values: Mapping[str, Any], where: str, *, prefix: str = "") -> T:
    """Dataclass `kind` built from `values` (its defaults for keys not given).

    `where` names the source in messages (a file, `--set`, a run's config.json) and `prefix` the
    section (`runtime.`): an unknown key or a value of another type raises `TrainInputError`.
    """
    return merge_options(kind(), values, where, prefix=prefix)


def merge_options(current: T, values: Mapping[str, Any], where: str, *, prefix: str = "") -> T:
    """A copy of the dataclass `current` with `values` set (same checks as `parse_options`).

    A key `a.b` sets field `b` of the nested dataclass in field `a`; a mapping given for a nested
    dataclass field updates its fields and keeps the others.
    """
    kinds = field_types(type(current))
    nested: dict[str, dict[str, Any]] = {}
    plain: dict[str, Any] = {}
    for key, value in values.items():
        name, dot, rest = str(key).partition(".")
        if name not in kinds:
            raise TrainInputError(_unknown(where, prefix, [str(key)], kinds))
        is_section = dataclasses.is_dataclass(kinds[name])
        if dot and not is_section:
            raise TrainInputError(
                f"{where}: unknown config key {prefix + str(key)}: {prefix + name} is not a "
                "section (sections: "
                f"{', '.join(n for n, k in kinds.items() if dataclasses.is_dataclass(k)) or 'none'})"
            )
        if is_section and (dot or isinstance(value, Mapping)):
            if not dot and not isinstance(value, Mapping):
                raise TrainInputError(
                    f"{where}: config key {prefix + name!r}: expected a mapping, found {value!r}"
                )
            nested.setdefault(name, {}).update({rest: value} if dot else dict(value))
        else:
            plain[name] = coerce(prefix + name, value, kinds[name], where)
    for name, updates in nested.items():
        section = getattr(current, name)
        plain[name] = merge_options(section, updates, where, prefix=f"{prefix}{name}.")
    return dataclasses.replace(current, **plain)  # type: ignore[type-var]


def read_task_options(config: TrainConfig, task: str, kind: type[T], *, where: str = "config") -> T:
    """The task section of `config` as the task's own dataclass `kind`.

    The public hook a task (e.g. ssen-instance) validates its settings through: `config.task`
    must be `task`, and every key of `config.task_options` a field of `kind` of its type (missing
    ones take `kind`'s defaults; a nested dataclass field takes a mapping); anything else raises
    `TrainInputError` naming `task_options.KEY` and `where` (e.g. the config.json it came from).
    Range checks are the task's own, on the dataclass returned.
    """
    if config.task != task:
        found = repr(config.task) if config.task else "no task (a semantic run)"
        raise TrainInputError(f"{where}: task must be {task!r}, found {found}")
    return parse_options(kind, config.task_options, where, prefix="task_options.")


def with_task_options(config: TrainConfig, task: str, options: Any) -> TrainConfig:
    """A copy of `config` owned by `task`, its section `options` (a dataclass instance) saved as
    the `task_options` mapping (what config.json holds and `read_task_options` reads back)."""
    if not dataclasses.is_dataclass(options) or isinstance(options, type):
        raise TypeError(f"options must be a dataclass instance, got {type(options).__name__}")
    return dataclasses.replace(config, task=task, task_options=dataclasses.asdict(options))
