"""Matching a checkpoint's state dict to a model: prefixes, head changes, a report by key name.

Accepted layouts (original model zoo and ours): a bare state dict, ``{"state_dict": ...}``,
``{"model": ...}``, with or without a wrapper prefix (``module.`` from DataParallel/DDP, or a
DepthContrast-style ``trunk.0.``), found automatically. Strict loading demands the exact names and
shapes. Lenient loading loads what fits, skips shape mismatches (e.g. the classifier when the class
count differs), and refuses when less than `min_fraction` of the model's parameters would load
(the wrong file).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from stseg_models.errors import CheckpointMismatchError, CheckpointReadError

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
_LIST_LIMIT = 12


def extract_state_dict(payload: object, where: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside a loaded checkpoint payload (see module docstring)."""
    if isinstance(payload, Mapping):
        for key in STATE_DICT_KEYS:
            inner = payload.get(key)
            if isinstance(inner, Mapping) and inner and _is_tensor_dict(inner):
                return dict(inner)
        if payload and _is_tensor_dict(payload):
            return dict(payload)
    raise CheckpointReadError(
        f"{where}: holds no state dict (expected a dict of tensors, or one under "
        f"{', '.join(repr(k) for k in STATE_DICT_KEYS)})"
    )


def _is_tensor_dict(mapping: Mapping) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in mapping.items())


def strip_prefix(state: Mapping[str, torch.Tensor], model_keys: set[str]) -> tuple[dict, str]:
    """Remove the wrapper prefix that makes most keys match `model_keys`; returns (state, prefix)."""
    if sum(k in model_keys for k in state) >= max(1, len(state) // 2):
        return dict(state), ""
    votes: Counter[str] = Counter()
    for key in state:
        for i, char in enumerate(key):
            if char == "." and key[i + 1 :] in model_keys:
                votes[key[: i + 1]] += 1
    if not votes:
        return dict(state), ""
    prefix, _ = votes.most_common(1)[0]
    stripped = {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in state.items()}
    return stripped, prefix


@dataclass
class LoadReport:
    """What a weight load did, key by key.

    loaded:     keys copied into the model.
    reshaped:   keys copied after dropping singleton axes (MinkowskiEngine 0.4 1x1 kernels).
    skipped:    (key, checkpoint shape, model shape) left at their initial values.
    missing:    model keys absent from the checkpoint.
    unexpected: checkpoint keys the model does not have.
    prefix:     wrapper prefix removed from the checkpoint keys ('' if none).
    fraction:   loaded parameter elements / all model parameter elements.
    """

    loaded: list[str] = field(default_factory=list)
    reshaped: list[str] = field(default_factory=list)
    skipped: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    prefix: str = ""
    fraction: float = 0.0

    @property
    def exact(self) -> bool:
        return not (self.skipped or self.missing or self.unexpected)

    def table(self) -> str:
        """A human-readable summary listing skipped, missing and unexpected keys by name."""
        lines = [
            f"loaded {len(self.loaded)} tensors ({self.fraction:.1%} of the model's parameters)"
            + (f", stripped prefix {self.prefix!r}" if self.prefix else "")
        ]
        if self.skipped:
            lines.append(f"skipped (shape mismatch) {len(self.skipped)}:")
            lines += [f"  {k}: checkpoint {list(a)} vs model {list(b)}" for k, a, b in self.skipped]
        for title, keys in (
            ("missing from checkpoint", self.missing),
            ("unexpected", self.unexpected),
        ):
            if keys:
                lines.append(f"{title} {len(keys)}: {_names(keys)}")
        return "\n".join(lines)


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_LIST_LIMIT])
    return shown + (f", ... ({len(keys) - _LIST_LIMIT} more)" if len(keys) > _LIST_LIMIT else "")


def _squeezed(shape: torch.Size) -> tuple[int, ...]:
    return tuple(s for s in shape if s != 1)


def match_state_dict(
    model: nn.Module, state: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """(tensors ready for `load_state_dict(strict=False)`, report) — no model change yet."""
    target = model.state_dict()
    state, prefix = strip_prefix(state, set(target))
    report = LoadReport(prefix=prefix)
    ready: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in target:
            report.unexpected.append(key)
            continue
        want = target[key].shape
        if value.shape == want:
            ready[key] = value
            report.loaded.append(key)
        elif value.numel() == target[key].numel() and _squeezed(value.shape) == _squeezed(want):
            ready[key] = value.reshape(want)
            report.loaded.append(key)
            report.reshaped.append(key)
        else:
            report.skipped.append((key, tuple(value.shape), tuple(want)))
    report.missing = [k for k in target if k not in state]
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    report.fraction = sum(params[k].numel() for k in ready if k in params) / max(total, 1)
    return ready, report


def load_weights(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    min_fraction: float = 0.5,
    where: str = "checkpoint",
) -> LoadReport:
    """Copy `state` into `model`.

    strict: every model key present with its exact shape and no unexpected keys, else
    `CheckpointMismatchError` listing the mismatched keys and shapes. Lenient: load what fits,
    report the rest, and raise when under `min_fraction` of the parameters would load.
    """
    ready, report = match_state_dict(model, state)
    if strict and not report.exact:
        raise CheckpointMismatchError(
            f"{where}: does not match {getattr(model, 'model_name', type(model).__name__)} "
            f"(another architecture or class count?)\n{report.table()}"
        )
    if report.fraction < min_fraction:
        raise CheckpointMismatchError(
            f"{where}: only {report.fraction:.1%} of the parameters of "
            f"{getattr(model, 'model_name', type(model).__name__)} would load "
            f"(at least {min_fraction:.0%} required; wrong file?)\n{report.table()}"
        )
    model.load_state_dict(ready, strict=False)
    return report
