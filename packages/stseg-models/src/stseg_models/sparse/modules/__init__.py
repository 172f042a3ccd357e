"""MinkowskiEngine 0.5.4's ``MinkowskiEngine.modules``: residual and squeeze-excitation blocks."""

from stseg_models.sparse.modules import resnet_block, senet_block
from stseg_models.sparse.modules.resnet_block import BasicBlock, Bottleneck
from stseg_models.sparse.modules.senet_block import SEBasicBlock, SEBottleneck, SELayer

__all__ = [
    "BasicBlock", "Bottleneck", "SEBasicBlock", "SEBottleneck", "SELayer", "resnet_block",
    "senet_block",
]  # fmt: skip
