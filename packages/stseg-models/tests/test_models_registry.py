"""The registry: names, exact original state dicts, parameter counts, norms and kernel regions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import stseg_models
from stseg_models.errors import UnknownModelError
from stseg_models.zoo import build_model, count_parameters, describe, list_models, resolve

TSV = Path(__file__).parent / "data" / "res16unet34c_state_dict.tsv"

DESIGN_NAMES = [
    *(
        f"Res16UNet{n}"
        for n in [
            "14",
            "14A",
            "14A2",
            "14B",
            "14B2",
            "14B3",
            "14C",
            "14D",
            "14E",
            "14F",
            "18",
            "18A",
            "18B",
            "18D",
            "18E",
            "18F",
        ]
    ),
    *(f"Res16UNet{n}" for n in ["34", "34A", "34B", "34C", "50", "101"]),
    *(
        f"MinkUNet{n}"
        for n in [
            "14",
            "18",
            "34",
            "50",
            "101",
            "14A",
            "14B",
            "14C",
            "14D",
            "18A",
            "18B",
            "18D",
            "34A",
            "34B",
            "34C",
        ]
    ),
    *(f"ResUNet{n}" for n in ["14", "18", "34", "50", "101", "14D", "18D", "34D", "34E", "34F"]),
    *(f"ResUNetIN{n}" for n in ["14", "18", "34", "34E", "50", "101"]),
    *(f"ResUNetINBN{n}" for n in ["14", "18", "34", "34E", "50", "101"]),
    *(f"STRes16UNet{n}" for n in ["14", "14A", "18", "18A", "34", "50", "101"]),
    "STResTesseract16UNet18A",
    "Mink16UNet34C",
]


def _meta(name: str, *args, **kwargs) -> torch.nn.Module:
    with torch.device("meta"):
        return build_model(name, *args, **kwargs)


def _reference_rows() -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in TSV.read_text().splitlines():
        name, shape = line.split("\t")
        rows.append((name, tuple(int(s) for s in shape.strip("()").split(",") if s.strip())))
    return rows


def test_registry_holds_exactly_the_design_names():
    assert sorted(DESIGN_NAMES) == list_models()
    assert "Mink16UNet34C" not in list_models(include_aliases=False)


def test_res16unet34c_state_dict_matches_reference_tsv_exactly():
    model = _meta("Res16UNet34C", 3, 20)
    mine = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert mine == _reference_rows()


def test_res16unet34c_has_37_85_million_parameters():
    model = _meta("Res16UNet34C", 3, 20)
    assert count_parameters(model) == 37_846_644
    assert round(count_parameters(model) / 1e6, 2) == 37.85


def test_first_kernel_5_changes_only_the_stem_kernel():
    three = {k: tuple(v.shape) for k, v in _meta("Res16UNet34C", 3, 20).state_dict().items()}
    five = {k: tuple(v.shape) for k, v in _meta("Res16UNet34C", 3, 20, 5).state_dict().items()}
    changed = {k for k in three if three[k] != five[k]}
    assert changed == {"conv0p1s1.kernel"}
    assert five["conv0p1s1.kernel"] == (125, 3, 32)


def test_alias_builds_the_same_network():
    canonical, _ = resolve("Mink16UNet34C")
    assert canonical == "Res16UNet34C"
    model = _meta("Mink16UNet34C", 3, 20)
    assert model.model_name == "Res16UNet34C"
    assert count_parameters(model) == 37_846_644


def test_unknown_name_lists_known_names_and_suggests():
    with pytest.raises(UnknownModelError) as info:
        build_model("Res16UNet34Z", 3, 20)
    message = str(info.value)
    assert "Res16UNet34Z" in message and "Did you mean" in message
    assert all(name in message for name in ("MinkUNet34C", "STRes16UNet18A", "ResUNetIN14"))
    assert isinstance(info.value, ValueError)  # exit code 2 on the command line


def test_bn_momentum_rule_configured_outside_blocks_01_inside():
    model = _meta("Res16UNet14", 3, 20, bn_momentum=0.02)
    momenta = {
        name.removesuffix(".bn"): module.momentum
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.BatchNorm1d)
    }
    outside = {k: v for k, v in momenta.items() if ".norm" not in k}
    inside = {k: v for k, v in momenta.items() if ".norm" in k}
    assert {"bn0", "bn1", "bntr4", "bntr7", "block2.0.downsample.1"} <= set(outside)
    assert set(outside.values()) == {0.02}
    assert inside and set(inside.values()) == {0.1}


def test_minkunet_uses_kernel_5_by_default_and_hypercube_everywhere():
    model = _meta("MinkUNet34C", 3, 20)
    assert tuple(model.conv0p1s1.kernel.shape) == (125, 3, 32)
    model4 = _meta("MinkUNet14A", 3, 5, dimension=4)
    assert model4.conv1p1s2.kernel.shape[0] == 16  # 2^4: strided along time too


def test_4d_kernel_regions_spatial_stem_hybrid_blocks_tesseract():
    st = _meta("STRes16UNet14A", 3, 5)
    assert st.D == 4
    assert st.conv0p1s1.kernel.shape[0] == 27  # 3x3x3x1
    assert st.conv1p1s2.kernel.shape[0] == 8  # 2x2x2x1 stride (2,2,2,1)
    assert st.convtr4p16s2.kernel.shape[0] == 8
    assert st.block1[0].conv1.kernel.shape[0] == 29  # 27 spatial + temporal cross t=-1, t=+1
    tess = _meta("STResTesseract16UNet18A", 3, 5)
    assert tess.block1[0].conv1.kernel.shape[0] == 81  # 3^4 hypercube


def test_instance_and_instance_batch_norm_naming():
    keys_in = set(_meta("ResUNetIN14", 3, 5).state_dict())
    keys_inbn = set(_meta("ResUNetINBN14", 3, 5).state_dict())
    assert not any(".bn." in k for k in keys_in)
    assert "block1.0.norm1.weight" in keys_in
    assert {"block1.0.norm1.0.weight", "block1.0.norm1.1.bn.weight", "bn1.0.weight"} <= keys_inbn
    assert "bn1.1.bn.running_var" in keys_inbn


def test_resunet_layout_names_and_classifier_width():
    model = _meta("ResUNet14", 3, 7)
    names = [n for n, _ in model.named_children()]
    assert names[:3] == ["conv1p1s1", "bn1", "block1"]
    assert {
        "conv2p1s2",
        "conv3p2s2",
        "conv4p4s2",
        "convtr4p8s2",
        "convtr5p4s2",
        "convtr6p2s2",
    } <= set(names)
    assert tuple(model.final.kernel.shape) == (128 + 64, 7)  # planes[6] + planes[0]


def test_bottleneck_classifier_reads_expanded_channels():
    model = _meta("Res16UNet50", 3, 7)
    assert tuple(model.final.kernel.shape) == (256 * 4, 7)
    assert tuple(model.block1[0].conv1.kernel.shape) == (32, 32)  # 1x1 reduce


def test_describe_reports_layout_and_parameters():
    info = describe("Res16UNet34C")
    assert info.parameters == 37_846_644
    assert info.aliases == ("Mink16UNet34C",)
    assert info.spec.layers == (2, 3, 4, 6, 2, 2, 2, 2)
    text = str(info)
    assert "37.85 M" in text and "[32, 64, 128, 256, 256, 128, 96, 96]" in text
    assert info.to_dict()["planes"] == [32, 64, 128, 256, 256, 128, 96, 96]
    modules = dict(info.modules)
    assert sum(modules.values()) == info.parameters
    assert modules["conv0p1s1"] == 27 * 3 * 32 and modules["final"] == 96 * 20 + 20


def test_package_exports_lazily():
    assert stseg_models.build_model is build_model
    assert callable(stseg_models.Segmenter.from_checkpoint)
    with pytest.raises(AttributeError):
        _ = stseg_models.no_such_name
