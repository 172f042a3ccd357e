"""Layer-by-layer table of a sparse network: MinkowskiEngine 0.5.4's ``utils.summary``.

`summary(model, x)` runs one forward pass with hooks on every module (containers
`nn.Sequential` / `nn.ModuleList` excepted), prints one line per module call -- name
``<Class>-<call number>``, output shape ``[rows, channels]``, parameter count (own ``weight`` /
``kernel`` / ``bias`` only, not children's) -- and the totals, in MinkowskiEngine's layout and with
its size estimates (4 bytes per number; coordinates counted at MinkowskiEngine's hash occupancy).
Returns ``(total_params, trainable_params)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from stseg_models.sparse.modes import MinkowskiAlgorithm

_RULE = "-" * 64
_DOUBLE_RULE = "=" * 64
_MIB = 1024.0**2


@dataclass
class _Row:
    name: str
    output_shape: Any
    params: int
    trainable: bool | None = None


@dataclass
class _Recorder:
    rows: list[_Row] = field(default_factory=list)

    def hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        params, trainable = 0, None
        for attr in ("weight", "kernel", "bias"):
            value = getattr(module, attr, None)
            if value is None or not hasattr(value, "size"):
                continue
            params += value.numel()
            if attr != "bias":
                trainable = bool(value.requires_grad)
        if isinstance(output, (list, tuple)):
            shape: Any = [list(o.shape) for o in output]
        else:
            shape = list(output.shape)
        name = f"{type(module).__name__}-{len(self.rows) + 1}"
        self.rows.append(_Row(name, shape, params, trainable))


def _hash_occupancy(x: Any) -> int:
    """Percent occupancy of MinkowskiEngine's coordinate hash table for the tensor's algorithm."""
    manager = getattr(x, "coordinate_manager", None)
    algorithm = getattr(manager, "minkowski_algorithm", MinkowskiAlgorithm.DEFAULT)
    return 25 if int(algorithm) == int(MinkowskiAlgorithm.SPEED_OPTIMIZED) else 50


def summary_table(model: nn.Module, summary_input: Any) -> tuple[str, tuple[int, int]]:
    """(printed table, (total_params, trainable_params)) of one forward pass of `model`."""
    recorder = _Recorder()
    hooks = [
        m.register_forward_hook(recorder.hook)
        for m in model.modules()
        if not isinstance(m, (nn.Sequential, nn.ModuleList))
    ]
    try:
        model(summary_input)
    finally:
        for h in hooks:
            h.remove()
    lines = [_RULE, "{:>20}  {:>25} {:>15}".format("Layer (type)", "Output Shape", "Param #")]
    lines.append(_DOUBLE_RULE)
    total = trainable = 0
    total_output = 0.0
    for row in recorder.rows:
        lines.append(f"{row.name:>20}  {row.output_shape!s:>25} {row.params:>15,}")
        total += row.params
        total_output += float(np.prod(row.output_shape))
        if row.trainable:
            trainable += row.params
    n = len(summary_input)
    coord_numbers = n * (1 + summary_input.D) * (100 / _hash_occupancy(summary_input))
    input_mb = (n * summary_input.shape[1] + coord_numbers) * 4.0 / _MIB
    output_mb = abs(2.0 * total_output * 4.0 / _MIB)  # x2 for gradients
    params_mb = abs(total * 4.0 / _MIB)
    lines += [
        _DOUBLE_RULE,
        f"Total params: {total:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total - trainable:,}",
        _RULE,
        f"Input size (MB): {input_mb:0.2f}",
        f"Forward/backward pass size (MB): {output_mb:0.2f}",
        f"Params size (MB): {params_mb:0.2f}",
        f"Estimated Total Size (MB): {params_mb + output_mb + input_mb:0.2f}",
        _RULE,
    ]
    return "\n".join(lines) + "\n", (total, trainable)


def summary(model: nn.Module, summary_input: Any) -> tuple[int, int]:
    """Print the layer table of `model` on `summary_input`; return (total, trainable) parameters."""
    text, counts = summary_table(model, summary_input)
    print(text)
    return counts
