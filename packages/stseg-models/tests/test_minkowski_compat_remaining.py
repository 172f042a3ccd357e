"""The last MinkowskiEngine 0.5.4 names == native (issue #13); `nox -s compat`.

MinkowskiAlgorithm, KernelRegion, the global coordinate manager, the adaptive log-softmax and
sync batch norm layers, the pruning / union / interpolation Function classes (called the way
MinkowskiEngine's layers call them), MinkowskiNetwork, MinkowskiOps, print_diagnostics,
__version__ and set_memory_manager_backend. Rows are matched by coordinate where the engines
order them differently (hash-map order in MinkowskiEngine).
"""

from __future__ import annotations

import shutil
import warnings
from typing import Any

import pytest
import torch

import stseg_models.sparse as NATIVE
from stseg_models.testing import minkowski_or_skip

pytestmark = pytest.mark.minkowski

MINK = minkowski_or_skip()

REL = 1e-10  # float64 throughout
ENGINES = (("native", NATIVE), ("mink", MINK))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12)) if b.numel() else 0.0


def rows(coords: torch.Tensor) -> list[tuple[int, ...]]:
    return [tuple(r) for r in coords.tolist()]


def by_coord(coords: torch.Tensor, feats: torch.Tensor) -> dict[tuple[int, ...], list[float]]:
    return {c: f for c, f in zip(rows(coords), feats.detach().tolist(), strict=True)}


def assert_same_rows(a: dict[Any, list[float]], b: dict[Any, list[float]]) -> None:
    assert set(a) == set(b)
    ta = torch.tensor([a[k] for k in sorted(a)], dtype=torch.float64)
    tb = torch.tensor([b[k] for k in sorted(a)], dtype=torch.float64)
    assert rel_err(ta, tb) < REL


def random_input(dim: int, channels: int, seed: int, n: int = 150, extent: int = 6):
    g = torch.Generator().manual_seed(seed)
    coords = torch.cat(
        [torch.randint(0, 2, (n, 1), generator=g), torch.randint(0, extent, (n, dim), generator=g)],
        1,
    )
    coords = torch.unique(coords, dim=0).int()
    return coords, torch.randn(len(coords), channels, generator=g, dtype=torch.float64)


# -- enums, KernelRegion ---------------------------------------------------------------------------
@pytest.mark.me_names("MinkowskiAlgorithm")
def test_minkowski_algorithm_members_and_values() -> None:
    native = {k: v.value for k, v in NATIVE.MinkowskiAlgorithm.__members__.items()}
    mink = {k: v.value for k, v in MINK.MinkowskiAlgorithm.__members__.items()}
    assert native == mink and len(native) == 3


KERNEL_CASES = [
    (3, 3, 1, 1, "HYPER_CUBE"),
    (3, 2, 2, 1, "HYPER_CUBE"),
    (3, 3, 1, 2, "HYPER_CROSS"),
    (3, 5, 2, 1, "HYPER_CROSS"),
    (4, 3, 1, 1, "HYPER_CUBE"),
    (4, 3, 2, 2, "HYPER_CROSS"),
    (4, 2, 1, 1, "HYPER_CUBE"),
]


@pytest.mark.me_names("KernelRegion", "KernelGenerator", "get_kernel_volume", "RegionType")
@pytest.mark.parametrize(("dim", "k", "stride", "dilation", "region"), KERNEL_CASES)
def test_kernel_region(dim: int, k: int, stride: int, dilation: int, region: str) -> None:
    """Fields of the region and the kernel volume it stands for.

    MinkowskiEngine 0.5.4's constructor always raises under Python 3 (its ``__init__`` passes
    the fields on to ``object.__init__``); its named tuple is built with ``_make`` here. The
    native constructor works and expands scalars as MinkowskiEngine's ``__init__`` meant to.
    """
    args = ([k] * dim, [stride] * dim, [dilation] * dim)
    with pytest.raises(TypeError, match=r"object\.__init__"):
        MINK.KernelRegion(*args, MINK.RegionType.HYPER_CUBE, None, dim)
    native = NATIVE.KernelRegion(k, stride, dilation, getattr(NATIVE.RegionType, region), None, dim)
    mink = MINK.KernelRegion._make([*args, getattr(MINK.RegionType, region), None, dim])
    assert native._fields == mink._fields
    assert [list(native[i]) for i in range(3)] == [list(mink[i]) for i in range(3)]
    assert native.region_type.name == mink.region_type.name and native.offset is mink.offset
    assert native.D == mink.D == dim
    volumes = {}
    for name, me in ENGINES:
        rt = getattr(me.RegionType, region)
        volumes[name] = me.get_kernel_volume(rt, [k] * dim, None, None, dim)
        gen = me.KernelGenerator(
            kernel_size=k, stride=stride, dilation=dilation, region_type=rt, dimension=dim
        )
        assert gen.kernel_volume == volumes[name]
    assert volumes["native"] == volumes["mink"]
    assert volumes["native"] == (k**dim if region == "HYPER_CUBE" else (k - 1) * dim + 1)


# -- global coordinate manager ---------------------------------------------------------------------
@pytest.mark.me_names(
    "SparseTensorOperationMode",
    "set_sparse_tensor_operation_mode",
    "sparse_tensor_operation_mode",
    "global_coordinate_manager",
    "set_global_coordinate_manager",
    "clear_global_coordinate_manager",
)
@pytest.mark.parametrize("dim", [3, 4])
def test_global_coordinate_manager_share_mode(dim: int) -> None:
    coords, feats = random_input(dim, 2, seed=1)
    for _, me in ENGINES:
        old_mode, old_manager = me.sparse_tensor_operation_mode(), me.global_coordinate_manager()
        try:
            me.set_sparse_tensor_operation_mode(
                me.SparseTensorOperationMode.SHARE_COORDINATE_MANAGER
            )
            manager = me.CoordinateManager(D=dim)
            me.set_global_coordinate_manager(manager)
            assert me.global_coordinate_manager() is manager
            a = me.SparseTensor(feats, coords)
            b = me.SparseTensor(feats * 2, coords + torch.tensor([0] + [1] * dim).int())
            assert a.coordinate_manager is manager and b.coordinate_manager is manager
            # tensors sharing a manager can be combined without passing it explicitly
            u = me.MinkowskiUnion()(a, b)
            assert len(u.C) == len(set(rows(a.C)) | set(rows(b.C)))
            me.clear_global_coordinate_manager()
            assert me.global_coordinate_manager() is None
            c = me.SparseTensor(feats, coords)  # creates and registers a fresh global manager
            assert c.coordinate_manager is not manager
            assert me.global_coordinate_manager() is c.coordinate_manager
        finally:
            me.set_sparse_tensor_operation_mode(old_mode)
            me.set_global_coordinate_manager(old_manager)
        assert me.sparse_tensor_operation_mode() == old_mode
        assert me.global_coordinate_manager() is old_manager


@pytest.mark.me_names(
    "SparseTensorOperationMode", "sparse_tensor_operation_mode", "set_global_coordinate_manager"
)
def test_separate_mode_ignores_global_manager() -> None:
    coords, feats = random_input(3, 2, seed=2)
    for _, me in ENGINES:
        old_manager = me.global_coordinate_manager()
        try:
            assert me.sparse_tensor_operation_mode() == (
                me.SparseTensorOperationMode.SEPARATE_COORDINATE_MANAGER
            )
            manager = me.CoordinateManager(D=3)
            me.set_global_coordinate_manager(manager)
            assert me.SparseTensor(feats, coords).coordinate_manager is not manager
        finally:
            me.set_global_coordinate_manager(old_manager)


# -- layers ----------------------------------------------------------------------------------------
@pytest.mark.me_names("MinkowskiAdaptiveLogSoftmaxWithLoss")
def test_adaptive_log_softmax_with_loss() -> None:
    """MinkowskiEngine wraps torch's module in the pointwise base, whose `forward(x)` calls it
    without a target: always a TypeError. The native layer takes `forward(x, target)` and
    raises a clear error without one; its result equals ME's wrapped module on the features."""
    coords, feats = random_input(3, 8, seed=3)
    target = torch.randint(0, 10, (len(coords),), generator=torch.Generator().manual_seed(3))
    layers = {
        n: me.MinkowskiAdaptiveLogSoftmaxWithLoss(8, 10, [4, 7]).double() for n, me in ENGINES
    }
    layers["mink"].load_state_dict(layers["native"].state_dict())
    res = {}
    for name, me in ENGINES:
        x = me.SparseTensor(feats.clone().requires_grad_(True), coords)
        module = layers[name].module
        assert type(module) is torch.nn.AdaptiveLogSoftmaxWithLoss
        if name == "mink":
            with pytest.raises(TypeError, match="target"):
                layers[name](x)
            out = module(x.F, target)
            log_prob = module.log_prob(x.F)
        else:
            with pytest.raises(NATIVE.SparseInputError, match="target"):
                layers[name](x)
            out = layers[name](x, target)
            log_prob = layers[name].log_prob(x).F
        out.loss.backward()
        grads = [p.grad.clone() for p in module.parameters()]
        res[name] = (by_coord(x.C, out.output[:, None]), out.loss, grads, log_prob)
    assert_same_rows(res["native"][0], res["mink"][0])
    assert rel_err(res["native"][1], res["mink"][1]) < REL
    for gn, gm in zip(res["native"][2], res["mink"][2], strict=True):
        assert rel_err(gn, gm) < REL
    assert rel_err(res["native"][3], res["mink"][3]) < REL


@pytest.mark.me_names("MinkowskiSyncBatchNorm", "MinkowskiBatchNorm")
@pytest.mark.parametrize("dim", [3, 4])
def test_sync_batch_norm_single_process(dim: int) -> None:
    """Without a process group SyncBatchNorm is batch norm: train (batch stats, running stats
    updated) and eval (running stats), equal to the native layer and to MinkowskiBatchNorm."""
    coords, feats = random_input(dim, 4, seed=4 + dim)
    res = {}
    for name, me in ENGINES:
        sync = me.MinkowskiSyncBatchNorm(4, momentum=0.3).double()
        plain = me.MinkowskiBatchNorm(4, momentum=0.3).double()
        with torch.no_grad():
            for layer in (sync, plain):
                layer.bn.weight.copy_(torch.linspace(0.5, 2.0, 4))
                layer.bn.bias.copy_(torch.linspace(-1.0, 1.0, 4))
        f = feats.clone().requires_grad_(True)
        x = me.SparseTensor(f, coords)
        y, yp = sync(x), plain(x)
        assert rel_err(y.F, yp.F) < REL
        y.F.pow(2).sum().backward()
        sync.eval()
        plain.eval()
        ye = sync(me.SparseTensor(feats, coords))
        assert rel_err(ye.F, plain(me.SparseTensor(feats, coords)).F) < REL
        res[name] = (
            by_coord(y.C, y.F),
            by_coord(x.C, f.grad),
            sync.bn.running_mean.clone(),
            sync.bn.running_var.clone(),
            by_coord(ye.C, ye.F),
            [sync.bn.weight.grad.clone(), sync.bn.bias.grad.clone()],
        )
    for i in (0, 1, 4):
        assert_same_rows(res["native"][i], res["mink"][i])
    for i in (2, 3):
        assert rel_err(res["native"][i], res["mink"][i]) < REL
    for gn, gm in zip(res["native"][5], res["mink"][5], strict=True):
        assert rel_err(gn, gm) < REL


# -- Function classes ------------------------------------------------------------------------------
@pytest.mark.me_names("MinkowskiPruningFunction")
@pytest.mark.parametrize("dim", [3, 4])
def test_pruning_function(dim: int) -> None:
    coords, feats = random_input(dim, 3, seed=5)
    mask = torch.rand(len(coords), generator=torch.Generator().manual_seed(5)) < 0.6
    up = torch.randn(
        len(coords), 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64
    )
    res = {}
    for name, me in ENGINES:
        f = feats.clone().requires_grad_(True)
        x = me.SparseTensor(f, coords)
        out_key = me.CoordinateMapKey(x.coordinate_map_key.get_coordinate_size())
        out = me.MinkowskiPruningFunction.apply(
            x.F, mask, x.coordinate_map_key, out_key, x.coordinate_manager
        )
        y = me.SparseTensor(
            out, coordinate_map_key=out_key, coordinate_manager=x.coordinate_manager
        )
        upstream = torch.stack([up[rows(coords).index(c)] for c in rows(y.C)])
        (y.F * upstream).sum().backward()
        res[name] = (by_coord(y.C, y.F), by_coord(x.C, f.grad))
    assert set(res["native"][0]) == set(rows(coords[mask]))
    for i in (0, 1):
        assert_same_rows(res["native"][i], res["mink"][i])


@pytest.mark.me_names("MinkowskiUnionFunction")
@pytest.mark.parametrize("dim", [3, 4])
def test_union_function(dim: int) -> None:
    ca, fa = random_input(dim, 3, seed=7)
    cb, fb = random_input(dim, 3, seed=8)
    res = {}
    for name, me in ENGINES:
        ga, gb = fa.clone().requires_grad_(True), fb.clone().requires_grad_(True)
        a = me.SparseTensor(ga, ca)
        b = me.SparseTensor(gb, cb, coordinate_manager=a.coordinate_manager)
        out_key = me.CoordinateMapKey(a.coordinate_map_key.get_coordinate_size())
        out = me.MinkowskiUnionFunction.apply(
            [a.coordinate_map_key, b.coordinate_map_key], out_key, a.coordinate_manager, a.F, b.F
        )
        y = me.SparseTensor(
            out, coordinate_map_key=out_key, coordinate_manager=a.coordinate_manager
        )
        weight = torch.tensor([float(sum(c) % 5) for c in rows(y.C)], dtype=torch.float64)
        (y.F.pow(2).sum(1) * weight).sum().backward()
        res[name] = (by_coord(y.C, y.F), by_coord(a.C, ga.grad), by_coord(b.C, gb.grad))
    assert set(res["native"][0]) == set(rows(ca)) | set(rows(cb))
    for i in (0, 1, 2):
        assert_same_rows(res["native"][i], res["mink"][i])


@pytest.mark.me_names("MinkowskiInterpolationFunction")
@pytest.mark.parametrize("dim", [3, 4])
def test_interpolation_function(dim: int) -> None:
    coords, feats = random_input(dim, 3, seed=9, n=400, extent=4)
    g = torch.Generator().manual_seed(10)
    batch = torch.randint(0, 2, (30, 1), generator=g).double()
    tfield = torch.cat([batch, torch.rand(30, dim, generator=g, dtype=torch.float64) * 3], 1)
    up = torch.randn(30, 3, generator=g, dtype=torch.float64)
    res = {}
    for name, me in ENGINES:
        f = feats.clone().requires_grad_(True)
        x = me.SparseTensor(f, coords)
        out, in_map, out_map, weights = me.MinkowskiInterpolationFunction.apply(
            x.F, tfield, x.coordinate_map_key, x.coordinate_manager
        )
        (out * up).sum().backward()
        pairs = {
            (rows(x.C[i : i + 1])[0], int(o)): float(w)
            for i, o, w in zip(
                in_map.long().tolist(), out_map.long().tolist(), weights.tolist(), strict=True
            )
        }
        res[name] = (out.detach(), by_coord(x.C, f.grad), pairs)
    # output rows follow tfield's rows on both: compared row for row
    assert rel_err(res["native"][0], res["mink"][0]) < REL
    assert_same_rows(res["native"][1], res["mink"][1])
    pn, pm = res["native"][2], res["mink"][2]
    assert set(pn) == set(pm) and all(abs(pn[k] - pm[k]) < 1e-12 for k in pn)


# -- MinkowskiNetwork, MinkowskiOps ----------------------------------------------------------------
def _network(me: Any) -> type:
    class Net(me.MinkowskiNetwork):
        def __init__(self, D: int) -> None:
            super().__init__(D)
            self.conv = me.MinkowskiConvolution(2, 3, kernel_size=3, dimension=D)

        def forward(self, x: Any) -> Any:
            return self.conv(x)

    return Net


@pytest.mark.me_names("MinkowskiNetwork")
@pytest.mark.parametrize("dim", [3, 4])
def test_minkowski_network(dim: int) -> None:
    coords, feats = random_input(dim, 2, seed=11)
    res = {}
    for name, me in ENGINES:
        assert set(vars(me.MinkowskiNetwork)) - {"__doc__", "__module__", "_abc_impl"} == {
            "__init__",
            "forward",
            "init",
            "__abstractmethods__",
        }
        assert me.MinkowskiNetwork.__abstractmethods__ == frozenset({"forward"})
        with pytest.raises(TypeError):
            me.MinkowskiNetwork(dim)
        net = _network(me)(dim).double()
        assert isinstance(net, torch.nn.Module)
        assert dim == net.D
        res[name] = net
    res["mink"].load_state_dict(res["native"].state_dict())
    xs = {n: me.SparseTensor(feats, coords) for n, me in ENGINES}
    yn, ym = (res[n](xs[n]) for n in ("native", "mink"))
    assert_same_rows(by_coord(yn.C, yn.F), by_coord(ym.C, ym.F))
    # ME 0.5.4's init() calls the removed `get_nrows` and always raises; the native one validates
    with pytest.raises(AttributeError):
        res["mink"].init(xs["mink"])
    assert res["native"].init(xs["native"]) is None


@pytest.mark.me_names("MinkowskiOps")
def test_minkowski_ops_public_names() -> None:
    """Every public op of MinkowskiEngine's MinkowskiOps module is in the native one."""

    def public(mod: Any, of: Any) -> set[str]:
        return {
            n
            for n in dir(mod)
            if not n.startswith("_") and getattr(getattr(mod, n), "__module__", None) == of
        }

    mink = public(MINK.MinkowskiOps, MINK.MinkowskiOps.__name__)
    assert mink >= {"cat", "to_sparse", "MinkowskiLinear", "MinkowskiStackCat"}
    missing = {n for n in mink if not hasattr(NATIVE.MinkowskiOps, n)}
    assert not missing
    for n in mink:
        assert getattr(NATIVE.MinkowskiOps, n) is getattr(NATIVE, n)


@pytest.mark.me_names("MinkowskiOps", "cat", "dense_coordinates")
@pytest.mark.parametrize("dim", [3, 4])
def test_minkowski_ops_cat_and_dense_coordinates(dim: int) -> None:
    coords, fa = random_input(dim, 2, seed=12)
    fb = fa * 3 - 1
    res = {}
    for name, me in ENGINES:
        a = me.SparseTensor(fa, coords)
        b = me.SparseTensor(
            fb, coordinate_map_key=a.coordinate_map_key, coordinate_manager=a.coordinate_manager
        )
        y = me.MinkowskiOps.cat(a, b)
        dc = me.MinkowskiOps.dense_coordinates(torch.Size([2, 1] + [3] * dim))
        res[name] = (by_coord(y.C, y.F), dc)
    assert_same_rows(res["native"][0], res["mink"][0])
    assert torch.equal(res["native"][1].long(), res["mink"][1].long())


# -- diagnostics, version, allocator -------------------------------------------------------------
@pytest.mark.me_names("print_diagnostics")
def test_print_diagnostics(capsys: pytest.CaptureFixture[str]) -> None:
    """Both print a report and return None; MinkowskiEngine 0.5.4 runs `nvidia-smi`
    unconditionally, so without it (CPU machines) it raises FileNotFoundError."""
    assert NATIVE.print_diagnostics() is None
    assert capsys.readouterr().out.strip()
    if shutil.which("nvidia-smi") is None:
        with pytest.raises(FileNotFoundError):
            MINK.print_diagnostics()
    else:  # pragma: no cover - GPU machines
        assert MINK.print_diagnostics() is None
    assert capsys.readouterr().out.strip()


@pytest.mark.me_names("__version__")
def test_version() -> None:
    """MinkowskiEngine reports 0.5.4; native reports it as a PEP 440 local version, 0.5.4+stseg."""
    assert MINK.__version__ == "0.5.4"
    public, _, local = NATIVE.__version__.partition("+")
    assert public == MINK.__version__ and local == "stseg"


@pytest.mark.me_names("set_memory_manager_backend", "GPUMemoryAllocatorType")
def test_set_memory_manager_backend() -> None:
    """Accepted with MinkowskiEngine's enum values (a deprecation warning on both); no effect
    natively: a convolution gives the same result before and after."""
    coords, feats = random_input(3, 2, seed=13)
    conv = NATIVE.MinkowskiConvolution(2, 2, kernel_size=3, dimension=3).double()
    before = conv(NATIVE.SparseTensor(feats, coords)).F
    for _, me in ENGINES:
        for member in me.GPUMemoryAllocatorType.__members__.values():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assert me.set_memory_manager_backend(member) is None
            assert caught
    assert set(NATIVE.GPUMemoryAllocatorType.__members__) == set(
        MINK.GPUMemoryAllocatorType.__members__
    )
    assert torch.equal(conv(NATIVE.SparseTensor(feats, coords)).F, before)
