"""Process groups, launching, and the few collectives the trainer needs.

Three ways to run: one process (no process group); `--gpus N` / `--procs N`, where `launch` spawns N
local workers (NCCL on GPUs, gloo on CPU); and `torchrun` (one machine: `--standalone`; several:
`--nnodes/--node-rank/--master-addr/--master-port`), whose environment (`RANK`, `WORLD_SIZE`,
`LOCAL_RANK`, `MASTER_ADDR`, ...) `context_from_env` reads. Every process group has a timeout, so a
dead peer becomes an error instead of a hang.

The rendezvous of `launch` owns its port: the parent process starts the TCP store on port 0 (the
kernel picks a free port and the store keeps it bound) and the workers join that store as clients,
so no other program can take the port between choosing and binding it.

Gradients are averaged by `torch.nn.parallel.DistributedDataParallel` (`wrap_model`): its
backward all-reduces buckets of gradients while the rest of the backward still runs.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from stseg_data.cli_support import is_out_of_memory, os_error_line, out_of_memory_line
from stseg_data.errors import StsegError
from stseg_train.errors import TrainInputError, TrainRuntimeError


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: rank, world size, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


class WorkerFailed(StsegError):
    """A spawned worker exited non-zero; carries that worker's exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


STORE_PORT_ENV = "STSEG_TRAIN_STORE_PORT"  # set by `launch`: the parent's TCP store to join


def rendezvous_store(timeout_s: float) -> dist.TCPStore:
    """A TCP store server on a port the kernel picks (port 0) and the store keeps bound."""
    return dist.TCPStore(
        "127.0.0.1",
        0,
        is_master=True,
        wait_for_workers=False,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


def check_gpus(requested: int) -> None:
    """Raise TrainInputError when fewer than `requested` CUDA devices are present."""
    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested > found:
        raise TrainInputError(
            f"--gpus {requested}: only {found} CUDA device(s) present"
            + ("; use --procs N for CPU processes" if found == 0 else "")
        )


def context_from_env(timeout_s: float, prefer_cuda: bool) -> DistContext:
    """Join the process group described by the launcher's environment, if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    use_cuda = prefer_cuda and torch.cuda.is_available()
    device = f"cuda:{local}" if use_cuda else "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    if world > 1 and not dist.is_initialized():
        if _loopback_only():
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
        timeout = datetime.timedelta(seconds=timeout_s)
        backend = "nccl" if use_cuda else "gloo"
        store_port = os.environ.get(STORE_PORT_ENV)
        if store_port:  # spawned by `launch`: join the parent's store
            store = dist.TCPStore(
                "127.0.0.1", int(store_port), world, is_master=False, timeout=timeout
            )
            dist.init_process_group(
                backend=backend, store=store, rank=rank, world_size=world, timeout=timeout
            )
        else:  # torchrun (or any launcher setting MASTER_ADDR/MASTER_PORT)
            dist.init_process_group(
                backend=backend, init_method="env://", rank=rank, world_size=world, timeout=timeout
            )
    return DistContext(rank=rank, world_size=world, local_rank=local, device=device)


def _loopback_only() -> bool:
    return os.environ.get("MASTER_ADDR", "127.0.0.1") in ("127.0.0.1", "localhost")


def _spawned_worker(
    local_rank: int,
    world: int,
    port: int,
    fn: Callable[..., Any],
    args: Sequence[Any],
    log_level: int | None = None,
) -> None:
    if log_level is not None and not logging.getLogger().handlers:
        # a spawned interpreter starts without the parent's logging setup (the CLI's): mirror it,
        # so rank 0's progress lines reach the terminal
        logging.basicConfig(level=log_level, format="%(message)s")
    os.environ.update(
        RANK=str(local_rank),
        LOCAL_RANK=str(local_rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        **{STORE_PORT_ENV: str(port)},
    )
    try:
        fn(*args)
    except StsegError as error:
        # Report once per worker in the CLI's one-line style, then exit with the error's code.
        _report(local_rank, str(error))
        sys.exit(error.exit_code)
    except OSError as error:  # a full disk or read-only folder the checks could not foresee
        _report(local_rank, os_error_line(error))
        sys.exit(1)
    except (MemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        _report(local_rank, out_of_memory_line(error))
        sys.exit(1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _report(rank: int, message: str) -> None:
    print(f"Error (rank {rank}): {message}", file=sys.stderr, flush=True)


def launch(
    fn: Callable[..., Any], args: Sequence[Any], nprocs: int, timeout_s: float = 600.0
) -> None:
    """Run `fn(*args)` in `nprocs` fresh processes joined into one group; raise if any fails.

    The group meets at a TCP store this process holds for the whole run (`rendezvous_store`)."""
    import torch.multiprocessing as mp

    store = rendezvous_store(timeout_s)
    port = int(store.port)
    root = logging.getLogger()
    log_level = root.getEffectiveLevel() if root.handlers else None
    try:
        mp.spawn(
            _spawned_worker, args=(nprocs, port, fn, args, log_level), nprocs=nprocs, join=True
        )
    except mp.ProcessExitedException as error:
        raise WorkerFailed(
            f"worker {error.error_index} exited with code {error.exit_code} (message above)",
            int(error.exit_code) if error.exit_code and error.exit_code > 0 else 1,
        ) from None
    except mp.ProcessRaisedException as error:
        # An unexpected exception (a bug): its last line here, the traceback in the debug log.
        lines = [line for line in str(error).strip().splitlines() if line.strip()]
        logging.getLogger(__name__).debug("worker traceback:\n%s", error)
        raise TrainRuntimeError(
            f"worker {error.error_index} failed: {lines[-1] if lines else 'no message'}"
        ) from None
    finally:
        del store  # the port is released only once every worker has ended


def all_reduce_sum(values: list[float], ctx: DistContext) -> list[float]:
    """Element-wise sum over ranks: lockstep flags (> 0 means "some rank") and loss totals."""
    if not ctx.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def wrap_model(module: torch.nn.Module, ctx: DistContext) -> torch.nn.Module:
    """`module` itself in one process; otherwise a `DistributedDataParallel` of it.

    Building the wrapper copies rank 0's parameters and buffers to every rank. Its backward
    leaves every rank with the gradient averaged over ranks. `broadcast_buffers=False`: each rank's
    batch norms keep their own running statistics, and a forward pass issues no collective, so a
    rank whose forward fails (out of memory) can still meet the others at the next collective.
    """
    if not ctx.distributed:
        return module
    device_ids = [torch.device(ctx.device).index] if ctx.device.startswith("cuda") else None
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=device_ids, broadcast_buffers=False
    )


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside a `DistributedDataParallel` wrapper (or `model` itself): for reading
    attributes a forward function needs (a sparse engine, model arguments)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.module  # type: ignore[no-any-return]
    return model


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's `obj` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()
