"""Every network name of the original work, as a table of `ModelSpec`s.

Sources: the Res16UNet / ResUNet tables of the original SpatioTemporalSegmentation code (and its
ScanNet fork, which added Res16UNet18E/F), and the MinkUNet table of the MinkowskiEngine examples
(first kernel 5, hypercube kernels everywhere). Only the PLANES / LAYERS numbers are taken over;
names are kept verbatim so old configs and checkpoints map over.
"""

from __future__ import annotations

from dataclasses import replace

from stseg_models.zoo.layers import Norm
from stseg_models.zoo.spec import ModelSpec

_R16_DEFAULT = (32, 64, 128, 256, 256, 256, 256, 256)
_L14 = (1, 1, 1, 1, 1, 1, 1, 1)
_L18 = (2, 2, 2, 2, 2, 2, 2, 2)
_L34 = (2, 3, 4, 6, 2, 2, 2, 2)
_L101 = (2, 3, 4, 23, 2, 2, 2, 2)

# Decoder widths of the letter variants (encoder is always 32, 64, 128, 256).
_LETTERS = {
    "A": (128, 128, 96, 96),
    "B": (128, 128, 128, 128),
    "C": (192, 192, 128, 128),
    "D": (384, 384, 384, 384),
    "E": (256, 128, 64, 64),
    "F": (256, 128, 64, 32),
}
_LETTERS_34 = {"A": (256, 128, 64, 64), "B": (256, 128, 64, 32), "C": (256, 128, 96, 96)}

_ENC = (32, 64, 128, 256)


def _res16(block: str, layers: tuple[int, ...], planes: tuple[int, ...], family: str) -> ModelSpec:
    return ModelSpec(layout="res16", block=block, layers=layers, planes=planes, family=family)  # type: ignore[arg-type]


def _res16_family() -> dict[str, ModelSpec]:
    depth = {"14": ("basic", _L14), "18": ("basic", _L18), "34": ("basic", _L34)}
    depth |= {"50": ("bottleneck", _L34), "101": ("bottleneck", _L101)}
    specs = {
        f"Res16UNet{d}": _res16(b, lay, _R16_DEFAULT, "Res16UNet") for d, (b, lay) in depth.items()
    }
    for d, letters in (("14", "ABCD"), ("18", "ABDEF")):
        for letter in letters:
            specs[f"Res16UNet{d}{letter}"] = replace(
                specs[f"Res16UNet{d}"], planes=_ENC + _LETTERS[letter]
            )
    for letter, dec in _LETTERS_34.items():
        specs[f"Res16UNet34{letter}"] = replace(specs["Res16UNet34"], planes=_ENC + dec)
    # stseg's own: the 14-layer network with the 18E/18F light decoders (not in the original
    # tables). The full-resolution decoder stage dominates CPU cost: 14F trains ~2.3x faster per
    # step than 14A at 10 cm (the synthetic main job's network).
    for letter in "EF":
        specs[f"Res16UNet14{letter}"] = replace(
            specs["Res16UNet14"], planes=_ENC + _LETTERS[letter]
        )
    # decoder-heavy (2) and encoder-heavy (3) 14-layer variants
    specs["Res16UNet14A2"] = replace(specs["Res16UNet14A"], layers=(1, 1, 1, 1, 2, 2, 2, 2))
    specs["Res16UNet14B2"] = replace(specs["Res16UNet14B"], layers=(1, 1, 1, 1, 2, 2, 2, 2))
    specs["Res16UNet14B3"] = replace(specs["Res16UNet14B"], layers=(2, 2, 2, 2, 1, 1, 1, 1))
    return specs


def _minkunet_family() -> dict[str, ModelSpec]:
    # MinkowskiEngine's example U-Net: same layout and names as Res16UNet, but a 5^3 first kernel
    # and plain hypercube kernels on every layer (also along time in 4D).
    res16 = _res16_family()
    cube = {"stem_region": "hypercube", "block_region": "hypercube", "conv1_kernel_size": 5}
    names = ["14", "18", "34", "50", "101", "14A", "14B", "14C", "14D", "18A", "18B", "18D"]
    names += ["34A", "34B", "34C"]
    return {
        f"MinkUNet{n}": replace(res16[f"Res16UNet{n}"], family="MinkUNet", **cube)  # type: ignore[arg-type]
        for n in names
    }


def _resunet_family() -> dict[str, ModelSpec]:
    base = ModelSpec(
        layout="resunet",
        block="basic",
        layers=(2, 2, 2, 2, 2, 2),
        planes=(64, 128, 256, 512, 256, 128, 128),
        init_dim=64,
        family="ResUNet",
    )
    depth = {
        "14": ("basic", (1, 1, 1, 1, 1, 1)),
        "18": ("basic", (2, 2, 2, 2, 2, 2)),
        "34": ("basic", (3, 4, 6, 3, 2, 2)),
        "50": ("bottleneck", (3, 4, 6, 3, 2, 2)),
        "101": ("bottleneck", (3, 4, 23, 3, 2, 2)),
    }
    specs = {f"ResUNet{d}": replace(base, block=b, layers=lay) for d, (b, lay) in depth.items()}  # type: ignore[arg-type]
    wide = (64, 128, 256, 512, 512, 512, 512)
    for d in ("14", "18", "34"):
        specs[f"ResUNet{d}D"] = replace(specs[f"ResUNet{d}"], planes=wide)
    specs["ResUNet34E"] = replace(
        specs["ResUNet34"], init_dim=32, planes=(32, 64, 128, 256, 128, 64, 64)
    )
    specs["ResUNet34F"] = replace(
        specs["ResUNet34"], init_dim=32, planes=(32, 64, 128, 256, 128, 64, 32)
    )
    norms: tuple[tuple[str, Norm], ...] = (("IN", "instance"), ("INBN", "instance_batch"))
    for tag, kind in norms:
        for d in ("14", "18", "34", "34E", "50", "101"):
            specs[f"ResUNet{tag}{d}"] = replace(
                specs[f"ResUNet{d}"], norm=kind, family=f"ResUNet{tag}"
            )
    return specs


def _spatiotemporal_family(res16: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
    # 4D: spatial-only stems and strides, hybrid (cube x temporal cross) residual blocks
    st = {
        f"STRes16UNet{n}": replace(res16[f"Res16UNet{n}"], dimension=4, family="STRes16UNet")
        for n in ("14", "14A", "18", "18A", "34", "50", "101")
    }
    # tesseract: full 3^4 hypercube kernels in the residual blocks
    st["STResTesseract16UNet18A"] = replace(
        st["STRes16UNet18A"], block_region="hypercube", family="STResTesseract16UNet"
    )
    return st


def build_catalog() -> tuple[dict[str, ModelSpec], dict[str, str]]:
    """(name -> spec, alias -> name) for every registered network."""
    res16 = _res16_family()
    specs = {**res16, **_minkunet_family(), **_resunet_family(), **_spatiotemporal_family(res16)}
    aliases = {"Mink16UNet34C": "Res16UNet34C"}
    return specs, aliases
