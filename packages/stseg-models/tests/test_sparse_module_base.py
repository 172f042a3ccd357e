"""Which layers derive from MinkowskiModuleBase: exactly those that do in MinkowskiEngine 0.5.4.

Third-party code walks networks with ``isinstance(m, ME.MinkowskiModuleBase)``; the lists below
are MinkowskiEngine 0.5.4's classes (read from its source), split by that test.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

import stseg_models.sparse as ME
from stseg_models.testing import minkowski_or_skip

# MinkowskiEngine 0.5.4: subclasses of MinkowskiModuleBase among its exported layer classes
MODULE_BASE = [
    "MinkowskiAdaptiveLogSoftmaxWithLoss", "MinkowskiAlphaDropout", "MinkowskiAvgPooling",
    "MinkowskiBroadcastAddition", "MinkowskiBroadcastMultiplication", "MinkowskiCELU",
    "MinkowskiChannelwiseConvolution", "MinkowskiConvolution", "MinkowskiConvolutionTranspose",
    "MinkowskiDropout", "MinkowskiELU", "MinkowskiGELU", "MinkowskiGenerativeConvolutionTranspose",
    "MinkowskiGlobalAvgPooling", "MinkowskiGlobalMaxPooling", "MinkowskiGlobalPooling",
    "MinkowskiGlobalSumPooling", "MinkowskiHardshrink", "MinkowskiHardsigmoid",
    "MinkowskiHardswish", "MinkowskiHardtanh", "MinkowskiInstanceNorm", "MinkowskiInterpolation",
    "MinkowskiLeakyReLU", "MinkowskiLogSigmoid", "MinkowskiLogSoftmax", "MinkowskiMaxPooling",
    "MinkowskiPReLU", "MinkowskiPoolingTranspose", "MinkowskiPruning", "MinkowskiRReLU",
    "MinkowskiReLU", "MinkowskiReLU6", "MinkowskiSELU", "MinkowskiSiLU", "MinkowskiSigmoid",
    "MinkowskiSinusoidal", "MinkowskiSoftmax", "MinkowskiSoftmin", "MinkowskiSoftplus",
    "MinkowskiSoftshrink", "MinkowskiSoftsign", "MinkowskiStableInstanceNorm",
    "MinkowskiSumPooling", "MinkowskiTanh", "MinkowskiTanhshrink", "MinkowskiThreshold",
    "MinkowskiToDenseTensor", "MinkowskiToFeature", "MinkowskiToSparseTensor",
]  # fmt: skip
# ... and the torch.nn.Module subclasses that are not
PLAIN_MODULE = [
    "MinkowskiBatchNorm", "MinkowskiBroadcast", "MinkowskiBroadcastConcatenation",
    "MinkowskiLinear", "MinkowskiNetwork", "MinkowskiStackCat", "MinkowskiStackMean",
    "MinkowskiStackSum", "MinkowskiStackVar", "MinkowskiSyncBatchNorm", "MinkowskiUnion",
]  # fmt: skip


def split_by_module_base(api: Any) -> tuple[list[str], list[str]]:
    """(names of the API's nn.Module classes deriving from its MinkowskiModuleBase, the others)."""
    base = api.MinkowskiModuleBase
    modules = sorted(
        n
        for n, o in vars(api).items()
        if n.startswith("Minkowski")
        and n not in ("MinkowskiModuleBase", "MinkowskiNonlinearityBase")
        and inspect.isclass(o)
        and issubclass(o, torch.nn.Module)
    )
    derived = [n for n in modules if issubclass(getattr(api, n), base)]
    return derived, [n for n in modules if n not in derived]


def test_native_layers_derive_from_module_base_as_minkowski_engine() -> None:
    derived, plain = split_by_module_base(ME)
    assert derived == sorted(MODULE_BASE)
    assert plain == sorted(PLAIN_MODULE)


def test_isinstance_walk_finds_the_layers_of_a_network() -> None:
    net = torch.nn.Sequential(
        ME.MinkowskiConvolution(3, 4, 3, dimension=3),
        ME.MinkowskiBatchNorm(4),
        ME.MinkowskiReLU(),
        ME.MinkowskiMaxPooling(2, 2, dimension=3),
        ME.MinkowskiLinear(4, 2),
        ME.MinkowskiGlobalAvgPooling(),
    )
    found = [type(m).__name__ for m in net.modules() if isinstance(m, ME.MinkowskiModuleBase)]
    assert found == [
        "MinkowskiConvolution",
        "MinkowskiReLU",
        "MinkowskiMaxPooling",
        "MinkowskiGlobalAvgPooling",
    ]


@pytest.mark.me_names("MinkowskiModuleBase")
@pytest.mark.minkowski
def test_module_base_split_equals_minkowski_engine() -> None:
    mink = minkowski_or_skip(module_level=False)
    assert split_by_module_base(mink) == split_by_module_base(ME)
