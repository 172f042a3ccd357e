"""`ModelSpec`: everything that distinguishes one registered network from another.

Each name of the zoo is one spec: a U-Net layout (``res16``: the 8-stage Res16UNet / MinkUNet
U-Net with a full-resolution stem; ``resunet``: the 6-stage ResUNet), a block type, the number of
blocks and channels per stage, the norm and the kernel regions. The networks themselves are
written once (`stseg_models.zoo.unet`) and read their shape from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Layout = Literal["res16", "resunet"]

#: Stage counts of each layout: (encoder + decoder stages).
LAYOUT_STAGES: dict[str, int] = {"res16": 8, "resunet": 6}


@dataclass(frozen=True)
class ModelSpec:
    """Shape of one network.

    layout:        "res16" (Res16UNet / MinkUNet, 8 stages) or "resunet" (ResUNet, 6 stages).
    block:         "basic" (BasicBlock) or "bottleneck" (Bottleneck, expansion 4).
    layers:        blocks per stage (8 or 6 entries).
    planes:        output channels per stage before expansion (8 or 6 entries; 7 for resunet:
                   the 6 stages plus the last transposed convolution).
    init_dim:      channels of the first convolution.
    norm:          "batch", "instance" or "instance_batch" everywhere (stem, blocks, shortcuts).
    stem_region:   kernel region of stem / strided / transposed convolutions.
    block_region:  kernel region of the 3x3x3 convolutions inside the residual blocks.
    dimension:     3 (space) or 4 (space + time) by default; `build_model` may override it.
    conv1_kernel_size: default size of the first convolution (3; MinkUNet used 5).
    family:        the name family, for listings ("Res16UNet", "MinkUNet", ...).
    """

    layout: Layout
    block: Literal["basic", "bottleneck"]
    layers: tuple[int, ...]
    planes: tuple[int, ...]
    init_dim: int = 32
    norm: Literal["batch", "instance", "instance_batch"] = "batch"
    stem_region: Literal["hypercube", "spatial", "hybrid"] = "spatial"
    block_region: Literal["hypercube", "spatial", "hybrid"] = "hybrid"
    dimension: int = 3
    conv1_kernel_size: int = 3
    family: str = ""

    def __post_init__(self) -> None:
        stages = LAYOUT_STAGES[self.layout]
        planes_needed = stages if self.layout == "res16" else stages + 1
        if len(self.layers) != stages or len(self.planes) != planes_needed:
            raise ValueError(
                f"{self.layout} needs {stages} layer counts and {planes_needed} plane counts, "
                f"got {len(self.layers)} and {len(self.planes)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
