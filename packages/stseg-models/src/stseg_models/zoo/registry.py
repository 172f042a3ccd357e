"""Model registry: `list_models()`, `build_model(name, ...)`, `describe(name)`.

Names are the original work's (`Res16UNet34C`, `MinkUNet34C`, `STRes16UNet18A`, ...), so old
configs and checkpoints map over. `Mink16UNet34C` is an alias of `Res16UNet34C`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import nn

from stseg_models.errors import UnknownModelError
from stseg_models.zoo.catalog import build_catalog
from stseg_models.zoo.spec import ModelSpec

DEFAULT_BN_MOMENTUM = 0.02


@cache
def _catalog() -> tuple[dict[str, ModelSpec], dict[str, str]]:
    return build_catalog()


def list_models(*, include_aliases: bool = True) -> list[str]:
    """Every registered name, sorted (aliases included unless asked otherwise)."""
    specs, aliases = _catalog()
    names = list(specs) + (list(aliases) if include_aliases else [])
    return sorted(names)


def resolve(name: str) -> tuple[str, ModelSpec]:
    """(canonical name, spec) for a name or alias; `UnknownModelError` listing the names otherwise."""
    specs, aliases = _catalog()
    canonical = aliases.get(name, name)
    if canonical in specs:
        return canonical, specs[canonical]
    known = list_models()
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}.{hint} Known models: {', '.join(known)}")


def build_model(
    name: str,
    in_channels: int,
    out_channels: int,
    conv1_kernel_size: int | None = None,
    dimension: int | None = None,
    bn_momentum: float = DEFAULT_BN_MOMENTUM,
    *,
    backend: str | None = None,
) -> nn.Module:
    """Build a registered network, e.g. ``build_model("Res16UNet34C", 3, 20)``.

    Input: a `SparseTensor` with `in_channels` features and `dimension` (3 or 4) spatial
    coordinate columns; output: a `SparseTensor` of `out_channels` logits on the same coordinates.
    `conv1_kernel_size` (3 or 5) and `dimension` default to the network's own (3 and 3, except
    MinkUNet's first kernel 5 and the 4D ST* networks). `bn_momentum` applies to the stem,
    strided, transposed and shortcut norms; norms inside residual blocks use 0.1 as the original.
    `backend` picks the sparse engine ("native" or "minkowski"; default: $STSEG_SPARSE_BACKEND,
    else native).
    """
    from stseg_models.zoo.unet import LAYOUTS  # imports the sparse engine only when building

    canonical, spec = resolve(name)
    kernel = spec.conv1_kernel_size if conv1_kernel_size is None else int(conv1_kernel_size)
    dim = spec.dimension if dimension is None else int(dimension)
    if kernel < 1:
        raise ValueError(f"conv1_kernel_size must be >= 1, got {kernel}")
    if dim < 3:
        raise ValueError(f"dimension must be 3 (space) or 4 (space + time), got {dim}")
    model = LAYOUTS[spec.layout](spec, in_channels, out_channels, kernel, dim, bn_momentum, backend)
    model.model_name = canonical  # type: ignore[assignment]
    model.model_args = {  # type: ignore[assignment]
        "name": canonical,
        "in_channels": in_channels,
        "out_channels": out_channels,
        "conv1_kernel_size": kernel,
        "dimension": dim,
        "bn_momentum": bn_momentum,
    }
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameter elements (buffers such as running means excluded)."""
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class ModelDescription:
    """What `describe` reports: the spec, the resolved name and the parameter count."""

    name: str
    aliases: tuple[str, ...]
    spec: ModelSpec
    in_channels: int
    out_channels: int
    parameters: int
    modules: tuple[tuple[str, int], ...] = ()  # (top-level module, parameters) in forward order

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            **self.spec.to_dict(),
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "parameters": self.parameters,
            "modules": dict(self.modules),
        }

    def __str__(self) -> str:
        s = self.spec
        lines = [
            f"{self.name}" + (f" (alias: {', '.join(self.aliases)})" if self.aliases else ""),
            f"  family:      {s.family}  layout: {s.layout} ({len(s.layers)} stages)",
            f"  block:       {s.block}  layers: {list(s.layers)}",
            f"  planes:      {list(s.planes)}  first conv: {s.init_dim} channels, "
            f"kernel {s.conv1_kernel_size}",
            f"  norm:        {s.norm}  kernels: stem {s.stem_region}, blocks {s.block_region}",
            f"  dimension:   {s.dimension}D",
            f"  parameters:  {self.parameters:,} ({self.parameters / 1e6:.2f} M with "
            f"{self.in_channels} in / {self.out_channels} out channels)",
        ]
        lines += [f"    {name:<14} {count:>12,}" for name, count in self.modules if count]
        return "\n".join(lines)


def describe(name: str, in_channels: int = 3, out_channels: int = 20) -> ModelDescription:
    """Layout, blocks, channels and parameter count of a registered network."""
    canonical, spec = resolve(name)
    _, aliases = _catalog()
    # parameters on the meta device: counting them needs shapes, not memory
    with torch.device("meta"):
        model = build_model(canonical, in_channels, out_channels)
    return ModelDescription(
        name=canonical,
        aliases=tuple(a for a, target in aliases.items() if target == canonical),
        spec=spec,
        in_channels=in_channels,
        out_channels=out_channels,
        parameters=count_parameters(model),
        modules=tuple((n, count_parameters(m)) for n, m in model.named_children()),
    )
