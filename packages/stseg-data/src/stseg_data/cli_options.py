"""The options several stseg commands share, each defined once.

`--resume RUN`, `--threads N`, `--device`, `--precision`, `--rotations N`, `--out PATH` and `--overwrite` mean
the same in every command of the five command lines, so they are built here and nowhere else.
Each is a `SharedOption`, whose `shared` attribute names the definition: the CLI test walks every
command and checks that an option of one of these names is the shared one.

`--out` and `--overwrite` say what they write or replace per command (a file, a run folder, a
folder of predictions), so they take that sentence; their type and the rest of the help are fixed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

RESUME_HELP = (
    "Continue the interrupted run whose output folder is RUN, from where it stopped "
    "(its saved settings; options given now may override some)."
)
THREADS_HELP = (
    "CPU threads for torch, N >= 1 (default: {default}; 1 is fastest on a loaded machine)."
)
DEVICE_HELP = "Torch device: cpu, cuda or cuda:N."
PRECISIONS = ("fp32", "bf16", "fp16")
PRECISION_HELP = (
    "Network arithmetic: fp32, or bf16 / fp16 autocast (bf16: CPUs with AVX512-BF16 or AMX, recent "
    "GPUs; fp16: GPUs)."
)
ROTATIONS_HELP = "Average the predictions of N >= 1 rotations about the upright axis."
OVERWRITE_TAIL = "Without --overwrite an existing output is refused."

# A bare `--resume` (the form earlier versions of some commands had) arrives as this value.
_BARE = ""
_BARE_MESSAGE = (
    "give the folder of the run to continue: --resume RUN (a bare --resume is no longer accepted)"
)
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


class SharedOption(click.Option):
    """A Click option built by this module; `shared` names which definition it is."""

    def __init__(self, *args: Any, shared: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shared = shared


class RunFolder(click.Path):
    """The RUN of `--resume RUN`: a folder path (not a file); a bare `--resume` is refused."""

    name = "run folder"

    def __init__(self) -> None:
        super().__init__(file_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == _BARE:
            self.fail(_BARE_MESSAGE, param, ctx)
        return super().convert(value, param, ctx)


class Device(click.ParamType):
    """cpu, cuda or cuda:N; a CUDA device is checked to exist on this machine."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().lower()
        if not _DEVICE.fullmatch(text):
            self.fail(f"expected cpu, cuda or cuda:N, got {value!r}", param, ctx)
        if text.startswith("cuda"):
            problem = cuda_problem(int(text[5:]) if ":" in text else 0)
            if problem:
                self.fail(f"{text}: {problem}; use --device cpu", param, ctx)
        return text


def cuda_problem(index: int) -> str | None:
    """Why CUDA device `index` cannot be used here, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return f"CUDA is not available (torch {torch.__version__} is a CPU-only build)"
        return "CUDA is not available (no GPU visible to torch)"
    count = torch.cuda.device_count()
    if index >= count:
        return f"this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1}"
    return None


def resume_option(fn: F) -> F:
    """``--resume RUN``: continue the run in folder RUN (None when not given)."""
    return click.option(
        "--resume",
        cls=SharedOption,
        shared="resume",
        type=RunFolder(),
        metavar="RUN",
        default=None,
        is_flag=False,
        flag_value=_BARE,  # a bare --resume reaches RunFolder, which names the new form
        help=RESUME_HELP,
    )(fn)


def resumed_folder(
    out: str | Path | None, resume: str | None, name: str, *, out_given: bool = True
) -> str:
    """The output folder of a command whose output is also what `--resume RUN` continues.

    `--resume RUN` names it alone; `name` (e.g. OUT or --out) may repeat it but not differ.
    `out_given`: False when `out` is only the option's default (so RUN alone decides).
    """
    if resume is None:
        if out is None:
            raise click.UsageError(f"missing {name} (or --resume RUN to continue a run)")
        return str(out)
    if out is not None and out_given and Path(out) != Path(resume):
        raise click.UsageError(f"--resume {resume} and {name} {out} name different folders")
    return str(resume)


def threads_option(*, default: str = "all cores", expose: bool = False) -> Callable[[F], F]:
    """``--threads N`` (N >= 1), which sets torch's CPU threads when given.

    `default` says what happens without it. `expose`: also pass the value (or None) to the
    command, for commands that record it (e.g. for a later --resume).
    """

    def decorate(fn: F) -> F:
        return click.option(
            "--threads",
            cls=SharedOption,
            shared="threads",
            type=click.IntRange(min=1),
            metavar="N",
            default=None,
            expose_value=expose,
            callback=_set_threads,
            help=THREADS_HELP.format(default=default),
        )(fn)

    return decorate


def device_option(fn: F) -> F:
    """``--device cpu|cuda|cuda:N`` (default cpu), validated against this machine."""
    return click.option(
        "--device",
        cls=SharedOption,
        shared="device",
        type=Device(),
        default="cpu",
        show_default=True,
        help=DEVICE_HELP,
    )(fn)


def precision_option(*, default: str | None = "fp32") -> Callable[[F], F]:
    """``--precision fp32|bf16|fp16``; `default` None leaves it to the command's config."""

    def decorate(fn: F) -> F:
        return click.option(
            "--precision",
            cls=SharedOption,
            shared="precision",
            type=click.Choice(PRECISIONS),
            default=default,
            show_default=default is not None,
            help=PRECISION_HELP + ("" if default is not None else " Default: the config's (fp32)."),
        )(fn)

    return decorate


def rotations_option(fn: F) -> F:
    """``--rotations N`` (N >= 1, default 1): test-time rotations about the upright axis."""
    return click.option(
        "--rotations",
        cls=SharedOption,
        shared="rotations",
        type=click.IntRange(min=1),
        metavar="N",
        default=1,
        show_default=True,
        help=ROTATIONS_HELP,
    )(fn)


def out_option(
    what: str, *, default: str | None = None, required: bool = False, dest: str = "out"
) -> Callable[[F], F]:
    """``--out PATH`` (a `pathlib.Path`); `what` is the sentence saying what PATH is."""

    def decorate(fn: F) -> F:
        return click.option(
            "--out",
            dest,
            cls=SharedOption,
            shared="out",
            type=click.Path(path_type=Path),
            metavar="PATH",
            default=None if default is None else Path(default),
            show_default=default is not None,
            required=required,
            help=what,
        )(fn)

    return decorate


def overwrite_option(what: str) -> Callable[[F], F]:
    """``--overwrite``; `what` says what it replaces, the help adds that without it nothing is."""

    def decorate(fn: F) -> F:
        return click.option(
            "--overwrite",
            cls=SharedOption,
            shared="overwrite",
            is_flag=True,
            default=False,
            help=f"{what} {OVERWRITE_TAIL}",
        )(fn)

    return decorate


def _set_threads(_ctx: click.Context, _param: click.Parameter, value: int | None) -> int | None:
    # torch uses every core by default: fastest on an idle machine, but on a shared one OpenMP
    # threads that wait for each other made our runs several times slower.
    if value is not None:
        import torch

        torch.set_num_threads(value)
    return value
