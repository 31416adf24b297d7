"""Process-group context: who am I, how many are we, and the few collectives mmdistill needs.

A process launched by ``torchrun`` (env ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) joins a ``torch.distributed`` group; anything else is a
world of one and every helper here is a no-op, so single-process code paths are the same code.

* SLURM: ``srun`` tasks (``SLURM_PROCID``/``SLURM_NTASKS``) are mapped to the same variables.
* Backend: ``gloo`` on a CPU-only box; with CUDA the device-mapped ``"cpu:gloo,cuda:nccl"``
  (so CPU and CUDA tensors can both be reduced) and ``cuda:LOCAL_RANK`` becomes the current device. Never a
  hard-coded ``nccl``. ``MMDISTILL_DIST_BACKEND`` overrides.
* Timeout: ``MMDISTILL_DIST_TIMEOUT`` seconds bounds every collective, so a wedged peer turns into an error
  instead of a hang. Default 24 h: a rank that finished its jobs waits in a collective for the slowest job of
  the others (an expert, an evaluation seed), which can take hours at paper scale; a *dead* peer is handled
  sooner by torchrun, which stops the whole group when one worker exits with an error.
* :func:`exit_process` ends a distributed worker with ``destroy_process_group`` + ``os._exit``: torch 2.13
  CPU aborted about 13 % of torchrun workers at interpreter exit otherwise.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Rank, world size and backend of this process (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def backend_for(device: str | None = None) -> str:
    """``gloo`` for CPU; ``cpu:gloo,cuda:nccl`` when CUDA is usable."""
    forced = os.environ.get("MMDISTILL_DIST_BACKEND")
    if forced:
        return forced
    want_cuda = device != "cpu" and torch.cuda.is_available() and dist.is_nccl_available()
    return "cpu:gloo,cuda:nccl" if want_cuda else "gloo"


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(v) if v not in (None, "") else default


def slurm_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """torchrun-style variables from SLURM's (``srun`` tasks), when RANK is not set.

    ``SLURM_PROCID`` → ``RANK``, ``SLURM_NTASKS`` → ``WORLD_SIZE``, ``SLURM_LOCALID`` → ``LOCAL_RANK``. The
    rendezvous address still comes from ``MASTER_ADDR`` / ``MASTER_PORT``, which the job script exports.
    """
    env = dict(os.environ if env is None else env)
    if "RANK" in env or "SLURM_PROCID" not in env or int(env.get("SLURM_NTASKS", "1")) <= 1:
        return {}
    return {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": env["SLURM_NTASKS"], "LOCAL_RANK": env.get("SLURM_LOCALID", "0")}


def launched() -> bool:
    """True when the environment describes a multi-process launch (torchrun sets WORLD_SIZE; SLURM: srun tasks)."""
    return _env_int("WORLD_SIZE", 1) > 1 or bool(slurm_env())


def init_from_env(device: str | None = None) -> DistContext:
    """Join the torchrun group if launched (idempotent); a world-of-one context otherwise."""
    if dist.is_available() and dist.is_initialized():
        return context()
    if not (dist.is_available() and launched()):
        return DistContext()
    os.environ.update(slurm_env())
    for k in ("MASTER_ADDR", "MASTER_PORT"):
        if k not in os.environ:
            from ..errors import ConfigError

            raise ConfigError(f"distributed launch without {k}: export MASTER_ADDR and MASTER_PORT (torchrun sets them)")
    backend = backend_for(device)
    local_rank = _env_int("LOCAL_RANK", 0)
    if "nccl" in backend:
        torch.cuda.set_device(local_rank)
    timeout = datetime.timedelta(seconds=float(os.environ.get("MMDISTILL_DIST_TIMEOUT", "86400")))
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    return context()


def context() -> DistContext:
    """The current context; joins the group first when launched by torchrun and not yet joined."""
    if not (dist.is_available() and dist.is_initialized()):
        if dist.is_available() and launched():
            return init_from_env()
        return DistContext()
    return DistContext(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=_env_int("LOCAL_RANK", 0),
                       backend=str(dist.get_backend()))


def rank() -> int:
    return context().rank


def world() -> int:
    return context().world


def is_main() -> bool:
    return context().is_main


def barrier() -> None:
    if context().distributed:
        dist.barrier()


def all_reduce_sum_(tensors: Sequence[torch.Tensor]) -> None:
    """In-place sum over ranks of same-dtype tensors, as one flat buffer (one collective)."""
    if not tensors or not context().distributed:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    off = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[off:off + n].view_as(t))
        off += n


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a world of one)."""
    ctx = context()
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not context().distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shutdown() -> None:
    """Leave the process group (no-op when not joined)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def quiet_unless_main() -> None:
    """Under torchrun, send the stdout of ranks other than 0 to /dev/null (one copy of every report; stderr stays)."""
    if launched() and int(os.environ.get("RANK") or slurm_env().get("RANK", "0")) != 0:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process


def exit_process(code: int) -> None:
    """Exit with ``code``; a distributed worker leaves the group and ``os._exit``s."""
    if dist.is_available() and dist.is_initialized():
        try:
            shutdown()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    sys.exit(code)
