"""Training on several GPUs or machines with torch.distributed, as started by ``torchrun``.

    torchrun --nproc_per_node 4 -m napari_wss.cli train ...

torchrun starts one process per GPU and gives each ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT`` in its environment (also across machines, through its
rendezvous). :func:`session` turns them into a process group (NCCL on CUDA, gloo on the CPU) and
a :class:`DistContext` whose :meth:`DistContext.train_kwargs` plug into
:func:`napari_wss.training.train`:

* the model is wrapped in ``DistributedDataParallel``: every backward pass averages the gradients
  over the processes (batch-norm layers can become ``SyncBatchNorm``, CUDA only);
* every process trains on its own ``batch_size`` slices of each global batch of
  ``world_size · batch_size`` (the same shuffled order everywhere, like a ``DistributedSampler``);
* only process 0 writes checkpoints and previews;
* every step the processes agree that their losses were finite; if one was not, all raise
  :class:`~napari_wss.training.TrainingError` at the same step, so none is left waiting.

Any other failure ends its process; torchrun then sends the others SIGTERM, which is turned into
``KeyboardInterrupt`` here so their ``finally`` blocks run (checkpoints are written atomically, so
the last one stays intact). The process-group timeout bounds every collective when nothing
watches the processes. Without torchrun nothing here is used and training runs on one device.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import FrameType
from typing import Any

import torch
import torch.distributed as dist

# Imported before any process group exists, on purpose: this module's functions take
# ``group=group.WORLD`` defaults, evaluated at its first import -- which DistributedDataParallel
# triggers. Imported after init_process_group, the defaults would hold the group for the life of
# the interpreter, its gloo threads would outlive destroy_process_group, and their teardown at exit
# can abort a finished worker ("terminate called without an active exception", SIGABRT).
import torch.distributed.nn.functional
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from napari_wss.errors import InputError
from napari_wss.training import TrainingError, resolve_device

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 600.0
_LOST_PEER = ("Connection closed by peer", "Connection reset by peer", "Timed out waiting")


@dataclass(frozen=True)
class Launch:
    """Where this process sits among those torchrun started.

    Attributes:
        rank: global index of the process, 0 .. world_size - 1.
        world_size: processes over all machines.
        local_rank: index of the process on its own machine; picks its GPU.
    """

    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Launch | None:
        """Read torchrun's variables; None when ``WORLD_SIZE`` is not set (a plain start).

        Raises:
            InputError: the variables are not integers or are inconsistent.
        """
        env = os.environ if environ is None else environ
        if "WORLD_SIZE" not in env:
            return None
        raw = {k: env.get(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        try:
            world = int(env["WORLD_SIZE"])
            rank = int(env.get("RANK", "0"))
            local = int(env.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise InputError(f"torchrun's environment variables are not integers: {raw}") from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise InputError(
                "torchrun's environment is inconsistent: expected 0 <= RANK < WORLD_SIZE and "
                f"LOCAL_RANK >= 0, got {raw}"
            )
        return cls(rank, world, local)


def launched(environ: Mapping[str, str] | None = None) -> Launch | None:
    """The launch when this process is one of several started by torchrun, else None."""
    launch = Launch.from_env(environ)
    return launch if launch is not None and launch.world_size > 1 else None


@dataclass
class DistContext:
    """One process's view of a distributed run (see :func:`session`).

    Attributes:
        launch: rank, world size and local rank.
        device: this process's device (``cuda:LOCAL_RANK`` or ``cpu``).
        backend: ``nccl`` or ``gloo``.
        sync_bn: whether :meth:`wrap` turns batch-norm layers into ``SyncBatchNorm``.
    """

    launch: Launch
    device: torch.device
    backend: str
    sync_bn: bool = False

    @property
    def rank(self) -> int:
        return self.launch.rank

    @property
    def world_size(self) -> int:
        return self.launch.world_size

    @property
    def is_main(self) -> bool:
        """Process 0 alone writes checkpoints, logs and progress bars."""
        return self.launch.rank == 0

    def config_device(self, requested: str) -> str:
        """The device name to store in the config: the user's when it already means this device.

        ``auto`` or ``cuda`` stay as they are (``torch.cuda.set_device`` made ``cuda`` this
        process's GPU), so a checkpoint keeps a name that works on any machine; ``cuda:N`` or
        ``mps`` become ``cuda`` / ``cpu``.
        """
        if requested in ("auto", self.device.type) and resolve_device(requested).type == self.device.type:
            return requested
        return self.device.type

    def wrap(self, model: nn.Module) -> nn.Module:
        """Wrap the device model in ``DistributedDataParallel`` (its weights broadcast from rank 0).

        ``convert_sync_batchnorm`` swaps the batch-norm children in place and keeps their
        parameters and buffers, so the optimiser built on ``model.parameters()`` and the saved
        state dict (same keys, no ``module.`` prefix: :meth:`TrainState.to_dict` unwraps) do not
        change.
        """
        if self.sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, gradient_as_bucket_view=True)

    def all_ok(self, ok: bool) -> bool:
        """Whether every process reports ``ok`` (an all-reduce of one integer; all must call it)."""
        flag = torch.tensor([1 if ok else 0], dtype=torch.int32, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def train_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`napari_wss.training.train` for this process."""
        return {
            "wrap_model": self.wrap,
            "shard": (self.rank, self.world_size),
            "is_main": self.is_main,
            "sync_ok": self.all_ok,
        }


def _device_for(requested: str, launch: Launch) -> torch.device:
    dev = resolve_device(requested)
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        if launch.local_rank >= count:
            raise InputError(
                f"process {launch.local_rank} on this machine has no GPU of its own: the machine has {count} "
                f"GPU(s); start at most {count} processes per machine (torchrun --nproc_per_node {count})"
            )
        if dev.index is not None and dev.index != launch.local_rank:
            log.warning(
                "--device %s: each process uses the GPU of its local rank; this one uses cuda:%d",
                dev,
                launch.local_rank,
            )
        torch.cuda.set_device(launch.local_rank)
        return torch.device("cuda", launch.local_rank)
    if dev.type != "cpu":
        log.warning("distributed training runs on CUDA GPUs or the CPU; using the CPU instead of %s", dev.type)
    return torch.device("cpu")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """torchrun stops the surviving processes with SIGTERM: let them unwind like after Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _quiet_unless(main: bool) -> Iterator[None]:
    """Only process 0 logs warnings and notes; errors still come from every process."""
    logger = logging.getLogger("napari_wss")
    level = logger.level
    if not main:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def session(
    device: str = "auto",
    *,
    sync_bn: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    launch: Launch | None = None,
) -> Iterator[DistContext]:
    """Join the other processes for the duration of the block; always leaves the group at the end.

    Let go of the models :meth:`DistContext.wrap` returned before the block ends (build and use
    them in a function called inside it, as :func:`napari_wss.training.train` does): the group is
    torn down with them when the block exits.

    Args:
        device: the requested device (``auto``, ``cuda``, ``cpu``...): CUDA gives each process
            the GPU of its local rank and NCCL, anything else the CPU and gloo.
        sync_bn: turn batch-norm layers into ``SyncBatchNorm`` (CUDA only).
        timeout_s: how long any collective (and joining) may wait for the others.
        launch: default: read from torchrun's environment.

    Raises:
        InputError: not started by torchrun, a bad option, or the others could not be reached.
        TrainingError: contact with the other processes was lost during the block.
    """
    launch = launch if launch is not None else launched()
    if launch is None:
        raise InputError("distributed training needs several processes started by torchrun (WORLD_SIZE > 1)")
    if timeout_s <= 0:
        raise InputError(f"the distributed timeout must be a positive number of seconds, got {timeout_s:g}")
    dev = _device_for(device, launch)
    if sync_bn and dev.type != "cuda":
        raise InputError("--sync-bn needs CUDA GPUs (SyncBatchNorm does not run on the CPU); drop it or train on GPUs")
    if dist.is_initialized():
        raise RuntimeError("a torch.distributed process group already exists in this process")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    extra: dict[str, Any] = {"device_id": dev} if dev.type == "cuda" else {}
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    try:
        dist.init_process_group(
            backend,
            init_method="env://",
            rank=launch.rank,
            world_size=launch.world_size,
            timeout=timedelta(seconds=timeout_s),
            **extra,
        )
    except (dist.DistError, ValueError) as exc:
        raise InputError(
            f"process {launch.rank} could not join the other {launch.world_size - 1} at {where} "
            f"within {timeout_s:g} s ({type(exc).__name__}): check torchrun's rendezvous flags"
        ) from exc
    ctx = DistContext(launch, dev, backend, sync_bn)
    log.info("process %d of %d on %s (%s)", launch.rank, launch.world_size, dev, backend)
    try:
        with _sigterm_interrupts(), _quiet_unless(ctx.is_main):
            yield ctx
    except (dist.DistError, RuntimeError) as exc:
        # gloo reports a peer that went away as a plain RuntimeError; other RuntimeErrors are bugs.
        if not isinstance(exc, dist.DistError) and not any(m in str(exc) for m in _LOST_PEER):
            raise
        log.debug("collective failed", exc_info=True)
        raise TrainingError(
            f"process {launch.rank} of {launch.world_size} lost contact with the others "
            f"({type(exc).__name__}): another process stopped, did not answer within {timeout_s:g} s, "
            "or the network failed"
        ) from exc
    finally:
        # DistributedDataParallel sits in a reference cycle, so a wrapper the block dropped still
        # holds the process group until the next garbage collection -- possibly the interpreter's
        # shutdown (see the import of torch.distributed.nn.functional above). Collect it now, so
        # the group and its threads end here, while Python is whole.
        gc.collect()
        dist.destroy_process_group()


def run_if_launched(fn: Callable[[DistContext | None], int], device: str, **kwargs: Any) -> int:
    """Call ``fn(ctx)`` inside a :func:`session` under torchrun, else ``fn(None)`` (one device)."""
    launch = launched()
    if launch is None:
        return fn(None)
    with session(device, launch=launch, **kwargs) as ctx:
        return fn(ctx)
