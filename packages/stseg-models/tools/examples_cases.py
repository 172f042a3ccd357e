"""What to run of each MinkowskiEngine 0.5.4 example: its network(s), inputs of its shape, outputs.

Each `NetworkCase` builds a network from the imported example module, makes the input the way the
example's own training or demo code does (through the engine's API: ``ME.SparseTensor``,
``ME.TensorField``, ``ME.utils.*``, the example's collate functions), from random data of the
example's shape (`Data`, drawn once, engine independent), and names the outputs to check.
`FunctionCase` calls an example's demo functions in order (no network to compare).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import torch

Inputs = tuple[tuple[Any, ...], dict[str, torch.Tensor]]  # (forward args, leaf tensors)


@dataclass(frozen=True)
class NetworkCase:
    name: str
    module: str
    build: Callable[[ModuleType], torch.nn.Module]
    inputs: Callable[[ModuleType, ModuleType, dict[str, Any]], Inputs]  # (ME, example, data)
    outputs: Callable[[Any, dict[str, Any]], dict[str, Any]]  # (forward result, captured)
    data: Callable[[], dict[str, Any]]
    # The VAE adds noise by row position when its top module is training, and MinkowskiEngine
    # orders global-pooling rows arbitrarily (batch 1 before 0 here), so the noise cannot be
    # matched: only the top module goes to eval (no noise), its layers stay in training mode.
    top_eval: bool = False
    run: Callable[[torch.nn.Module, tuple[Any, ...]], Any] | None = None  # default: net(*args)


@dataclass(frozen=True)
class FunctionCase:
    name: str
    module: str
    functions: tuple[str, ...]


# --- random data of the examples' shapes -------------------------------------------------------


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def pattern_2d(batch: int = 2, channels: int = 3) -> dict[str, Any]:
    """tests/python/common.py's data_loader shape: a 3-row 2D glyph (9 points) per batch item."""
    rows = ["   X   ", "  X X  ", " XXXXX "]
    pts = [[i, j] for i, row in enumerate(rows) for j, ch in enumerate(row) if ch != " "]
    coords = torch.tensor([[b, *p] for b in range(batch) for p in pts], dtype=torch.int32)
    feats = torch.arange(len(coords) * channels).view(-1, channels) / 10
    return {"coords": coords, "feats": feats}


def voxel_cloud(
    seed: int, batch: int, n: int, extent: int, dim: int, channels: int
) -> dict[str, Any]:
    """Unique integer coordinates [N, 1 + dim] (batch first) with random features."""
    g = _gen(seed)
    c = torch.cat(
        [
            torch.randint(0, batch, (n, 1), generator=g),
            torch.randint(0, extent, (n, dim), generator=g),
        ],
        1,
    )
    c = torch.unique(c, dim=0).int()
    return {"coords": c, "feats": torch.randn(len(c), channels, generator=g)}


def sphere_points(seed: int, n: int, radius: float, center: float) -> np.ndarray:
    """n float points on a sphere shell (a stand-in for a ModelNet surface), float64 [n, 3]."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return center + radius * v * rng.uniform(0.97, 1.0, size=(n, 1))


def _float(x: np.ndarray) -> torch.Tensor:
    """A numpy array as a tensor of torch's default float type (float64 under ``--double``)."""
    return torch.from_numpy(x).to(torch.get_default_dtype())


def room_points(seed: int, n: int, size: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """Points on a floor and two walls of a `size` m room (metres) and colours in [0, 1]."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, size, size=(n, 3))
    plane = rng.integers(0, 3, size=n)
    p[np.arange(n), plane] = rng.uniform(0, 0.01, size=n)  # flatten onto one of 3 planes
    return p.astype(np.float64), rng.uniform(0, 1, size=(n, 3))


# --- inputs built the way each example builds them ---------------------------------------------


def sparse_input(ME: ModuleType, mod: ModuleType, data: dict[str, Any]) -> Inputs:
    feats = data["feats"].clone().requires_grad_(True)
    return (ME.SparseTensor(feats, data["coords"]),), {"features": feats}


def modelnet_input(ME: ModuleType, mod: ModuleType, data: dict[str, Any]) -> Inputs:
    """classification_modelnet40: pointnet's minkowski_collate_fn, then create_input_batch."""
    pointnet = __import__("examples.pointnet", fromlist=["minkowski_collate_fn"])
    items = [
        {
            "coordinates": _float(x),
            "features": _float(x),
            "label": torch.tensor([0]),
        }
        for x in data["clouds"]
    ]
    batch = pointnet.minkowski_collate_fn(items)
    feats = batch["features"].clone().requires_grad_(True)
    batch["features"] = feats
    field = mod.create_input_batch(batch, True, device="cpu", quantization_size=0.05)
    return (field,), {"features": feats}


def pointnet_input(ME: ModuleType, mod: ModuleType, data: dict[str, Any]) -> Inputs:
    """pointnet.py's demo: its minkowski_collate_fn, then a TensorField of the raw points."""
    items = [
        {
            "coordinates": _float(x),
            "features": _float(x),
            "label": torch.tensor([0]),
        }
        for x in data["clouds"]
    ]
    batch = mod.minkowski_collate_fn(items)
    feats = batch["features"].clone().requires_grad_(True)
    return (ME.TensorField(coordinates=batch["coordinates"], features=feats),), {"features": feats}


def indoor_input(ME: ModuleType, mod: ModuleType, data: dict[str, Any]) -> Inputs:
    """indoor.py's demo: a TensorField of normalised colours at 2 cm, .sparse(), then the network."""
    coords, colors = data["room"]
    feats = mod.normalize_color(torch.from_numpy(colors)).to(torch.get_default_dtype())
    feats.requires_grad_(True)
    field = ME.TensorField(
        features=feats,
        coordinates=ME.utils.batched_coordinates([coords / 0.02], dtype=torch.float32),
        quantization_mode=ME.SparseTensorQuantizationMode.UNWEIGHTED_AVERAGE,
        minkowski_algorithm=ME.MinkowskiAlgorithm.SPEED_OPTIMIZED,
    )
    return (field,), {"colors": feats}


def generative_input(ME: ModuleType, mod: ModuleType, data: dict[str, Any]) -> Inputs:
    """reconstruction.py's train(): one-hot codes at the origin with tensor stride = resolution."""
    batch, classes = len(data["xyzs"]), data["classes"]
    init = torch.zeros((batch, 4), dtype=torch.int)
    init[:, 0] = torch.arange(batch)
    code = torch.zeros((batch, classes))
    code[torch.arange(batch), torch.arange(batch) % classes] = 1
    code.requires_grad_(True)
    sin = ME.SparseTensor(features=code, coordinates=init, tensor_stride=data["resolution"])
    target_key, _ = sin.coordinate_manager.insert_and_map(
        ME.utils.batched_coordinates([torch.from_numpy(x) for x in data["xyzs"]]),
        string_id="target",
    )
    return (sin, target_key), {"code": code}


def completion_input(ME: ModuleType, mod: ModuleType, data: dict[str, Any]) -> Inputs:
    """completion.py's train(): the example's collate (crop x < resolution / 3), ones as features."""
    items = [(np.floor(x).astype(np.int32), x, 0) for x in data["xyzs"]]
    batch = mod.CollationAndTransformation(data["resolution"])(items)
    ones = torch.ones((len(batch["coords"]), 1), requires_grad=True)
    sin = ME.SparseTensor(features=ones, coordinates=batch["coords"])
    target_key, _ = sin.coordinate_manager.insert_and_map(
        ME.utils.batched_coordinates(batch["xyzs"]), string_id="target"
    )
    return (sin, target_key), {"ones": ones}


def vae_input(ME: ModuleType, mod: ModuleType, data: dict[str, Any]) -> Inputs:
    """vae.py's train(): its collate of quantised surfaces; the input's own key is the target."""
    items = []
    for x in data["xyzs"]:
        coords = np.floor(x)
        keep = ME.utils.sparse_quantize(coords, return_index=True, return_maps_only=True)
        keep = keep[0] if isinstance(keep, tuple) else keep
        items.append((coords[keep], x[keep], 0))
    batch = mod.collate_pointcloud_fn(items)
    ones = torch.ones((len(batch["coords"]), 1), requires_grad=True)
    sin = ME.SparseTensor(features=ones, coordinates=batch["coords"].int())
    return (sin, sin.coordinate_map_key), {"ones": ones}


def resnet_input(ME: ModuleType, mod: ModuleType, data: dict[str, Any]) -> Inputs:
    """resnet.py's demo: one cloud at three scales (batched float coordinates), random features."""
    c = torch.from_numpy(data["room"][0]) / 0.02
    coords = ME.utils.batched_coordinates([c, c / 2, c / 4], dtype=torch.float32)
    feats = torch.rand((len(coords), 3), generator=_gen(5)).requires_grad_(True)
    return (ME.SparseTensor(feats, coords),), {"features": feats}


def resfield_input(ME: ModuleType, mod: ModuleType, data: dict[str, Any]) -> Inputs:
    c = torch.from_numpy(data["room"][0]) / 0.02
    coords = ME.utils.batched_coordinates([c, c / 2], dtype=torch.float32)
    feats = torch.rand((len(coords), 3), generator=_gen(6)).requires_grad_(True)
    return (ME.TensorField(feats, coords),), {"features": feats}


def indoor_run(net: torch.nn.Module, args: tuple[Any, ...]) -> Any:
    """indoor.py: sparse() of the field, the network, slice() back to every point."""
    field = args[0]
    return net(field.sparse()).slice(field)


# --- outputs to check ---------------------------------------------------------------------------


def single(out: Any, captured: dict[str, Any]) -> dict[str, Any]:
    return {"out": out}


def to_feature_output(out: torch.Tensor, captured: dict[str, Any]) -> dict[str, Any]:
    """stack_unet ends in MinkowskiToFeature + nn.Linear: rows keyed by the captured coordinates."""

    class Rows:
        C = captured["to_feature_coords"]
        F = out

    return {"out": Rows()}


def generative_outputs(out: tuple[Any, ...], captured: dict[str, Any]) -> dict[str, Any]:
    """(per-level logits, per-level targets, final pruned tensor[, means, log_vars, zs])."""
    out_cls, targets, final = out[0], out[1], out[2]
    named: dict[str, Any] = {"final": final}
    for i, (cls, target) in enumerate(zip(out_cls, targets)):
        named[f"cls{i}"] = cls
        named[f"target{i}"] = (cls.C[target.bool()], torch.ones(int(target.sum()), 1))
    for i, extra in enumerate(out[3:]):
        named[("means", "log_vars", "zs")[i]] = extra
    return named


def _pair_outputs(named: dict[str, Any]) -> dict[str, Any]:
    class Pair:
        def __init__(self, c: torch.Tensor, f: torch.Tensor) -> None:
            self.C, self.F = c, f

    return {k: Pair(*v) if isinstance(v, tuple) else v for k, v in named.items()}


def generative(out: tuple[Any, ...], captured: dict[str, Any]) -> dict[str, Any]:
    return _pair_outputs(generative_outputs(out, captured))


# --- the cases ----------------------------------------------------------------------------------


def _room() -> dict[str, Any]:
    return {"room": room_points(3, 12000)}


def _big_room() -> dict[str, Any]:
    """resnet.py's demo cloud is a scanned room; its stride-192 stage needs several voxels."""
    return {"room": room_points(4, 12000, size=6.0)}


def _shapes(resolution: int, radius: float, center: float, n: int) -> Callable[[], dict[str, Any]]:
    def make() -> dict[str, Any]:
        xyzs = [sphere_points(10 + b, n, radius, center) for b in range(2)]
        return {"xyzs": xyzs, "resolution": resolution, "classes": 8}

    return make


def _clouds() -> dict[str, Any]:
    return {"clouds": [sphere_points(20 + b, 2048, 1.0, 0.0) for b in range(2)]}


FUNCTION_CASES = (
    FunctionCase(
        "sparse_tensor_basic",
        "sparse_tensor_basic",
        (
            "sparse_tensor_initialization",
            "sparse_tensor_arithmetics",
            "operation_mode",
            "decomposition",
        ),
    ),
    FunctionCase("convolution", "convolution", ("conv", "conv_on_coords")),
)

NETWORK_CASES = (
    NetworkCase("example ExampleNetwork D=2", "example", lambda m: m.ExampleNetwork(3, 5, D=2), sparse_input, single, pattern_2d),
    NetworkCase("unet UNet D=2", "unet", lambda m: m.UNet(3, 5, D=2), sparse_input, single, pattern_2d),
    NetworkCase("stack_unet StackUNet D=2", "stack_unet", lambda m: m.StackUNet(3, 5, D=2), sparse_input, to_feature_output, pattern_2d),
    NetworkCase("minkunet MinkUNet14A D=2", "minkunet", lambda m: m.MinkUNet14A(3, 5, D=2), sparse_input, single, pattern_2d),
    NetworkCase("minkunet MinkUNet14A D=3", "minkunet", lambda m: m.MinkUNet14A(3, 5, D=3), sparse_input, single, lambda: voxel_cloud(1, 2, 1500, 20, 3, 3)),
    NetworkCase("minkunet MinkUNet34C D=3", "minkunet", lambda m: m.MinkUNet34C(3, 20, D=3), sparse_input, single, lambda: voxel_cloud(2, 2, 1500, 20, 3, 3)),
    NetworkCase("indoor MinkUNet34C + TensorField", "indoor", lambda m: m.MinkUNet34C(3, 20), indoor_input, single, _room, run=indoor_run),
    NetworkCase("resnet ResNet14", "resnet", lambda m: m.ResNet14(3, 10, D=3), resnet_input, single, _big_room),
    NetworkCase("resnet ResFieldNet14", "resnet", lambda m: m.ResFieldNet14(3, 10, D=3), resfield_input, single, _big_room),
    NetworkCase("pointnet MinkowskiPointNet", "pointnet", lambda m: m.MinkowskiPointNet(3, 40, embedding_channel=1024, dimension=3), pointnet_input, single, _clouds),
    NetworkCase("classification MinkowskiFCNN", "classification_modelnet40", lambda m: m.MinkowskiFCNN(3, 40), modelnet_input, single, _clouds),
    NetworkCase("classification MinkowskiSplatFCNN", "classification_modelnet40", lambda m: m.MinkowskiSplatFCNN(3, 40), modelnet_input, single, _clouds),
    NetworkCase("reconstruction GenerativeNet", "reconstruction", lambda m: m.GenerativeNet(128, in_nchannel=8), generative_input, generative, _shapes(128, 20.0, 64.0, 3000)),
    NetworkCase("completion CompletionNet", "completion", lambda m: m.CompletionNet(128, in_nchannel=512), completion_input, generative, _shapes(128, 24.0, 40.0, 3000)),
    # centred on 128, not 64: MinkowskiEngine's CPU global pooling asserts (in_size > out_size) when
    # the stride-128 input already has a single voxel per shape, which is every shape inside [0, 128)
    NetworkCase("vae VAE", "vae", lambda m: m.VAE(), vae_input, generative, _shapes(128, 20.0, 128.0, 3000), top_eval=True),
)  # fmt: skip
