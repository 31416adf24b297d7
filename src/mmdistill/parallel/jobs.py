"""A resumable job list: the one way mmdistill runs embarrassingly parallel work.

A :class:`Job` has an id, the output file(s) it produces and a ``run`` callable that writes them atomically
(:mod:`mmdistill.io`). :func:`run_jobs`:

1. rank r of a world of W takes jobs r, r+W, r+2W, … (a world of one takes them all, in order);
2. a job whose output is already valid (``done()``; default: every output file exists, which atomic writes
   make equivalent to "complete") is skipped, so a killed run resumes where it stopped;
3. all ranks exchange their status (this is the barrier); a failure on any rank raises on every rank;
4. rank 0 runs ``gather()`` (assemble results, write a manifest) and every rank receives its return value.

The expert buffers, DAVDD encoder banks and evaluation sweeps all go through here, in one process or under
``torchrun``, so there is one implementation of each job.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, Sequence, TypeVar

from ..errors import MMDistillError
from ..io import atomic_write_json
from ..progress import say
from . import context as dctx

T = TypeVar("T")


class JobError(MMDistillError):
    """A job failed on some rank (raised on every rank, naming the rank and the job)."""


@dataclass(frozen=True)
class Job:
    """One unit of work. ``run()`` must write every path in ``outputs`` atomically."""

    id: str
    outputs: tuple[Path, ...]
    run: Callable[[], None]
    done: Callable[[], bool] | None = None  # default: all outputs are files

    def is_done(self) -> bool:
        if self.done is not None:
            return bool(self.done())
        return all(Path(p).is_file() for p in self.outputs)


@dataclass
class JobReport(Generic[T]):
    """What happened, over all ranks: ids run and skipped (resume), wall time, and ``gather()``'s value."""

    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    value: T | None = None


def shard(n: int, rank: int, world: int) -> range:
    """Indices of the jobs rank ``rank`` takes: rank, rank+world, …"""
    return range(rank, n, world)


def run_jobs(jobs: Sequence[Job], gather: Callable[[], T] | None = None, *, desc: str = "jobs") -> JobReport[T]:
    """Run this rank's share of ``jobs``, skip finished ones, then gather on rank 0 (see the module doc)."""
    ids = [j.id for j in jobs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise JobError(f"{desc}: duplicate job ids {dup[:5]}")
    ctx = dctx.context()
    t0 = time.perf_counter()
    ran: list[str] = []
    skipped: list[str] = []
    failure: BaseException | None = None
    mine = list(shard(len(jobs), ctx.rank, ctx.world))
    who = f" (rank {ctx.rank})" if ctx.world > 1 else ""
    for k, i in enumerate(mine):
        job = jobs[i]
        try:
            if job.is_done():
                skipped.append(job.id)
                continue
            say(f"{desc}{who}: {k + 1}/{len(mine)} {job.id} ...")
            tj = time.perf_counter()
            job.run()
            say(f"{desc}{who}: {k + 1}/{len(mine)} {job.id} done in {time.perf_counter() - tj:.0f} s")
            if not job.is_done():
                raise JobError(f"{desc}: job {job.id!r} finished without a valid output ({', '.join(map(str, job.outputs))})")
            ran.append(job.id)
        except BaseException as e:  # noqa: BLE001 - reported to every rank below, then re-raised
            failure = e
            break
    status = {"rank": ctx.rank, "ran": ran, "skipped": skipped,
              "error": None if failure is None else f"job {jobs[i].id!r}: {type(failure).__name__}: {failure}"}
    statuses = dctx.all_gather_object(status)
    if failure is not None:
        raise failure
    errors = [s for s in statuses if s["error"]]
    if errors:
        raise JobError(f"{desc}: " + "; ".join(f"rank {s['rank']} failed {s['error']}" for s in errors))
    report: JobReport[T] = JobReport(ran=[x for s in statuses for x in s["ran"]],
                                     skipped=[x for s in statuses for x in s["skipped"]])
    if gather is not None:
        value: Any = None
        err: str | None = None
        if ctx.is_main:
            try:
                value = gather()
            except BaseException as e:  # noqa: BLE001
                if not ctx.distributed:
                    raise
                err = f"{type(e).__name__}: {e}"
                value = e
        if ctx.distributed:
            err, shared = dctx.broadcast_object((err, None if err else value))
            if err is not None:
                if ctx.is_main and isinstance(value, BaseException):
                    raise value
                raise JobError(f"{desc}: gather on rank 0 failed: {err}")
            value = shared
        report.value = value
    report.wall_s = time.perf_counter() - t0
    return report


def main_first(fn: Callable[[], T], *, desc: str = "setup") -> T:
    """Run ``fn`` on rank 0, then on the other ranks (which then hit rank 0's cache); errors reach every rank."""
    ctx = dctx.context()
    if not ctx.distributed:
        return fn()
    value: Any = None
    err: str | None = None
    if ctx.is_main:
        try:
            value = fn()
        except BaseException as e:  # noqa: BLE001
            err = f"{type(e).__name__}: {e}"
            dctx.broadcast_object(err)
            raise
    err = dctx.broadcast_object(err)
    if err is not None:
        raise JobError(f"{desc}: rank 0 failed: {err}")
    return value if ctx.is_main else fn()


# ------------------------------------------------------------------------------------------------ JSON jobs
def read_json(path: str | Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None when absent or unreadable (a torn write is impossible; a hand edit is not)."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def json_job(job_id: str, path: str | Path, compute: Callable[[], dict[str, Any]], key: str) -> Job:
    """A job whose output is one JSON object tagged with ``key``; a file with another key is stale and redone."""
    path = Path(path)

    def run() -> None:
        atomic_write_json(path, {"key": key, **compute()})

    def done() -> bool:
        obj = read_json(path)
        return obj is not None and obj.get("key") == key

    return Job(id=job_id, outputs=(path,), run=run, done=done)
