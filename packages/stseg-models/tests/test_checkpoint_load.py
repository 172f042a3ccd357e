"""Checkpoints: original model-zoo layouts, strict and lenient loading, safe reading, safetensors."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from stseg_models.checkpoint import (
    convert_original,
    dataset_preset,
    export_safetensors,
    read_checkpoint,
    save_checkpoint,
)
from stseg_models.checkpoint_io import read_checkpoint_file
from stseg_models.errors import (
    CheckpointMismatchError,
    CheckpointReadError,
    UnsafeCheckpointError,
)
from stseg_models.weights import extract_state_dict, load_weights, strip_prefix
from stseg_models.zoo import build_model

torch.set_num_threads(1)

NAME = "Res16UNet14A"  # the smallest Res16UNet (8 M parameters)


@pytest.fixture(scope="module")
def model20() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(NAME, 3, 20).eval()


def _fresh(out: int = 20) -> torch.nn.Module:
    torch.manual_seed(1)
    return build_model(NAME, 3, out)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module, skip: tuple[str, ...] = ()) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa if not k.startswith(skip))


class _Gadget:
    """Pickles into a call that would create a sentinel file if ever unpickled unsafely."""

    def __init__(self, sentinel: str) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


@pytest.mark.parametrize("layout", ["bare", "state_dict", "module_prefix", "trunk_prefix"])
def test_original_zoo_layouts_load_strictly(tmp_path, model20, layout):
    state = model20.state_dict()
    payload = {
        "bare": state,
        "state_dict": {"state_dict": state, "iteration": 60000, "best_val": np.float64(72.1)},
        "module_prefix": {"state_dict": {f"module.{k}": v for k, v in state.items()}},
        "trunk_prefix": {"model": {f"module.trunk.0.{k}": v for k, v in state.items()}},
    }[layout]
    path = tmp_path / "orig.pth"
    torch.save(payload, path)
    ckpt = read_checkpoint(path)
    assert ckpt.inference is None  # original files carry no stseg metadata
    target = _fresh()
    report = load_weights(target, ckpt.state_dict, strict=True)
    assert report.exact and report.fraction == 1.0
    assert report.prefix == {"module_prefix": "module.", "trunk_prefix": "module.trunk.0."}.get(
        layout, ""
    )
    assert _same_weights(model20, target)


def test_lenient_load_drops_head_on_class_count_change(model20):
    target = _fresh(13)
    report = load_weights(target, model20.state_dict(), strict=False)
    assert [k for k, _, _ in report.skipped] == ["final.kernel", "final.bias"]
    assert report.skipped[0][1:] == ((96, 20), (96, 13))
    assert not report.missing and not report.unexpected
    assert report.fraction > 0.99
    assert _same_weights(model20, target, skip=("final",))
    assert "final.kernel: checkpoint [96, 20] vs model [96, 13]" in report.table()


def test_strict_load_names_mismatched_keys_and_shapes(model20):
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(_fresh(13), model20.state_dict(), strict=True)
    message = str(info.value)
    assert "final.kernel: checkpoint [96, 20] vs model [96, 13]" in message
    assert "final.bias" in message


def test_strict_load_reports_missing_and_unexpected(model20):
    state = dict(model20.state_dict())
    state.pop("bn0.bn.weight")
    state["extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(_fresh(), state, strict=True)
    assert "missing from checkpoint 1: bn0.bn.weight" in str(info.value)
    assert "unexpected 1: extra.weight" in str(info.value)


def test_wrong_architecture_refused_even_when_lenient(model20):
    other = build_model("ResUNet14", 3, 20).state_dict()
    with pytest.raises(CheckpointMismatchError, match=r"only .* of the parameters"):
        load_weights(_fresh(), other, strict=False)


def test_minkowski_04_style_1x1_kernels_are_reshaped(model20):
    state = {
        k: (v.unsqueeze(0) if k.endswith("downsample.0.kernel") else v)
        for k, v in model20.state_dict().items()
    }
    target = _fresh()
    report = load_weights(target, state, strict=True)
    assert report.reshaped and all(k.endswith("downsample.0.kernel") for k in report.reshaped)
    assert _same_weights(model20, target)


def test_strip_prefix_leaves_matching_keys_alone():
    keys = {"a.b", "c"}
    state = {"a.b": torch.zeros(1), "c": torch.zeros(1)}
    assert strip_prefix(state, keys) == (state, "")


def test_payload_without_tensors_is_not_a_checkpoint():
    with pytest.raises(CheckpointReadError, match="holds no state dict"):
        extract_state_dict({"iteration": 3, "config": {"lr": 0.1}}, "x.pth")


def test_own_checkpoint_round_trip_keeps_metadata(tmp_path, model20):
    path = tmp_path / "ours.pt"
    save_checkpoint(path, model20, dataset_preset("scannet"), extra={"iteration": 7})
    ckpt = read_checkpoint(path)
    assert ckpt.model_args["name"] == NAME and ckpt.model_args["out_channels"] == 20
    assert ckpt.inference.dataset == "scannet" and ckpt.inference.voxel_size == 0.02
    assert ckpt.inference.label_ids[:3] == [1, 2, 3] and len(ckpt.inference.class_names) == 20
    assert ckpt.extra == {"iteration": 7}
    model, report = ckpt.build()
    assert report.exact and _same_weights(model20, model)


def test_safetensors_round_trip_is_bitwise(tmp_path, model20):
    pt, st = tmp_path / "a.pt", tmp_path / "a.safetensors"
    save_checkpoint(pt, model20, dataset_preset("scannet"))
    export_safetensors(pt, st)
    ckpt = read_checkpoint(st)
    assert ckpt.inference == read_checkpoint(pt).inference
    model, _ = ckpt.build()
    assert _same_weights(model20, model)
    assert ckpt.state_dict["bn0.bn.num_batches_tracked"].dtype == torch.int64


def test_export_refuses_to_overwrite(tmp_path, model20):
    pt, st = tmp_path / "a.pt", tmp_path / "a.safetensors"
    save_checkpoint(pt, model20, dataset_preset("scannet"))
    st.write_bytes(b"keep")
    with pytest.raises(Exception, match="already exists"):
        export_safetensors(pt, st)
    assert st.read_bytes() == b"keep"


def test_convert_original_infers_shapes_and_applies_preset(tmp_path, model20):
    src, dst = tmp_path / "orig.pth", tmp_path / "ours.pt"
    torch.save({"state_dict": model20.state_dict(), "arch": NAME}, src)
    report = convert_original(src, dst, dataset="scannet")
    assert report.exact
    ckpt = read_checkpoint(dst)
    assert ckpt.model_args["conv1_kernel_size"] == 3 and ckpt.model_args["in_channels"] == 3
    assert ckpt.inference.class_names[0] == "wall"


@pytest.mark.parametrize("cut", [0, 1, 0.5, -1])
def test_truncated_checkpoint_is_a_typed_error(tmp_path, model20, cut):
    path = tmp_path / "ours.pt"
    save_checkpoint(path, model20, dataset_preset("scannet"))
    data = path.read_bytes()
    size = {0: 0, 1: 1, 0.5: len(data) // 2, -1: len(data) - 1}[cut]
    path.write_bytes(data[:size])
    with pytest.raises(CheckpointReadError, match=str(path)):
        read_checkpoint(path)


def test_bit_flip_inside_a_tensor_is_detected(tmp_path, model20):
    path = tmp_path / "ours.pt"
    save_checkpoint(path, model20, dataset_preset("scannet"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the middle of the file lies inside the weights
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointReadError, match="CRC mismatch"):
        read_checkpoint(path)


def test_truncated_safetensors_is_a_typed_error(tmp_path, model20):
    path = tmp_path / "w.safetensors"
    save_checkpoint(path, model20, dataset_preset("scannet"))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointReadError, match=r"not a valid \.safetensors"):
        read_checkpoint(path)


@pytest.mark.parametrize("content", [b"hello world\n", os.urandom(2000), b"PK\x03\x04garbage"])
def test_non_checkpoint_files_are_typed_errors(tmp_path, content):
    path = tmp_path / "x.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointReadError):
        read_checkpoint(path)


def test_missing_file_is_a_typed_error(tmp_path):
    with pytest.raises(CheckpointReadError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "absent.pt")


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_gadget_is_refused_and_never_runs(tmp_path, model20, legacy):
    sentinel = tmp_path / "SENTINEL"
    path = tmp_path / "evil.pth"
    payload = {"state_dict": model20.state_dict(), "config": _Gadget(str(sentinel))}
    torch.save(payload, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        read_checkpoint(path)
    assert not sentinel.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_raw_pickle_gadget_is_refused_and_never_runs(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"x": _Gadget(str(sentinel))}))
    with pytest.raises((UnsafeCheckpointError, CheckpointReadError)):
        read_checkpoint_file(path)
    assert not sentinel.exists()


def test_future_schema_version_is_refused(tmp_path, model20):
    path = tmp_path / "ours.pt"
    save_checkpoint(path, model20, dataset_preset("scannet"))
    payload = torch.load(path, weights_only=True)
    payload["schema_version"] = 99
    torch.save(payload, path)
    with pytest.raises(CheckpointReadError, match="schema_version 99"):
        read_checkpoint(path)


def test_every_torch_load_in_the_package_is_weights_only():
    """E2: a static check over our sources (the test itself reads files, it never unpickles)."""
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "stseg_models"
    offenders = []
    for file in src.rglob("*.py"):
        text = file.read_text()
        for match in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in match.group(1):
                offenders.append(f"{file.name}: {match.group(0)}")
        if re.search(r"pickle\.loads?\(|allow_pickle=True", text):
            offenders.append(f"{file.name}: pickle")
    assert not offenders
