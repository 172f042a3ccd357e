"""`--threads N`: the CPU thread count of an inference command (a process setting, set by CLIs).

torch uses every core by default. That is fastest on an idle machine, but on a shared or loaded
one OpenMP threads that wait for each other made our runs several times slower: one thread is
then the fastest choice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def _set_threads(_ctx: click.Context, _param: click.Parameter, value: int | None) -> None:
    if value is not None:
        import torch

        torch.set_num_threads(value)


def threads_option(fn: F) -> F:
    """Add ``--threads N`` (N >= 1; default: torch's choice) to a Click command."""
    return click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        expose_value=False,
        callback=_set_threads,
        help="CPU threads for torch (default: all cores; 1 is fastest on a loaded machine).",
    )(fn)
