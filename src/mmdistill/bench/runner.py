"""``mmdistill bench``: run a suite's cells (each in its own process), merge the rows into
``benchmarks/<suite>.json`` and re-render ``BENCHMARKS.md`` (and ``benchmarks/<suite>.csv``) from every
``benchmarks/*.json``."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from ..io import atomic_write_json
from .render import render
from .spec import Cell
from .suite import Suite, find_dirs, load_suite


def _env(jobs: int) -> dict[str, str]:
    env = os.environ.copy()
    # cores shared by the parallel cells; oversubscribed OpenMP threads stall badly on small nets
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, jobs))))
    return env


def _run_subprocess(cell: Cell, data_root: str | None, jobs: int = 1) -> list[dict[str, Any]]:
    cmd = [sys.executable, "-m", "mmdistill.bench.cell", json.dumps(cell.as_dict()), data_root or ""]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(jobs))
    if proc.returncode != 0 or "@@ROWS@@" not in proc.stdout:
        raise RuntimeError(f"bench cell {cell.id} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.split("@@ROWS@@", 1)[1])


def _prepare_buffers(suite: Suite, data_root: str | None) -> None:
    """Train the suite's missing expert buffers once, in their own process, before any cell's clock starts."""
    if not suite.buffers:
        return
    items = [[d, data, ex, str(p)] for d, data, ex, p in suite.buffers]
    cmd = [sys.executable, "-m", "mmdistill.bench.buffers", json.dumps(items), data_root or "", str(suite.threads or "")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(1))
    if proc.returncode != 0:
        raise RuntimeError(f"expert buffers of suite {suite.name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


def load_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return json.loads(path.read_text(encoding="utf-8"))


@contextlib.contextmanager
def _locked(path: Path):
    """Exclusive lock beside ``path``: two ``mmdistill bench`` runs of one suite merge rows without losing any."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def merge_rows(path: Path, cell_ids: list[str] | Callable[[str], bool], new: list[dict[str, Any]]) -> None:
    """Replace the rows of ``cell_ids`` (a list, or a predicate on a row's cell id such as :meth:`Cell.owns`) in
    ``path`` by ``new``: read, merge and write under the lock, so rows written meanwhile by another bench process
    survive."""
    gone = cell_ids if callable(cell_ids) else set(cell_ids).__contains__
    with _locked(path):
        rows = [r for r in load_rows(path) if not gone(str(r.get("cell")))] + new
        atomic_write_json(path, rows)


def forget_rows(suite: str, out_dir: Path, texts: list[str] | None = None, prune: bool = False,
                suites_dir: str | Path | None = None, configs_dir: str | Path | None = None) -> list[str]:
    """Remove rows from ``benchmarks/<suite>.json``: those whose cell id contains one of ``texts`` (rows measured
    with a method version that no longer exists) and, with ``prune``, those of cells the suite no longer defines.
    Returns the removed cell ids (sorted) and re-renders; the rows to re-measure are then run with ``--only``."""
    out_dir = Path(out_dir)
    sdir, cdir = find_dirs(suites_dir, configs_dir, root=out_dir)
    live = {i for c in load_suite(suite, sdir, cdir).cells for i in c.ids} if prune else set()
    path = out_dir / "benchmarks" / f"{suite}.json"
    with _locked(path):
        rows = load_rows(path)

        def gone(r: dict[str, Any]) -> bool:
            cid = str(r.get("cell"))
            return any(t in cid for t in texts or []) or (prune and cid not in live)

        removed = sorted({str(r.get("cell")) for r in rows if gone(r)})
        atomic_write_json(path, [r for r in rows if not gone(r)])
    render(out_dir / "benchmarks", out_dir / "BENCHMARKS.md", sdir)
    return removed


def run_suite(suite: str, out_dir: Path, only: list[str] | None = None, jobs: int = 1, data_root: str | None = None,
              render_only: bool = False, suites_dir: str | Path | None = None,
              configs_dir: str | Path | None = None) -> Path:
    """Run ``suite`` (``<suites_dir>/<suite>.yaml``, default ``benchmarks/suites`` of the current checkout) and
    render; ``render_only`` re-renders from the committed ``benchmarks/*.json``."""
    out_dir = Path(out_dir)
    bench_dir = out_dir / "benchmarks"
    sdir, cdir = find_dirs(suites_dir, configs_dir, root=out_dir)
    if render_only:
        return render(bench_dir, out_dir / "BENCHMARKS.md", sdir)
    spec = load_suite(suite, sdir, cdir)
    cells = spec.cells
    if only:
        cells = [c for c in cells if any(o in i for o in only for i in c.ids)]
        if not cells:
            raise ConfigError(f"--only {only} matches no cell of suite {suite!r}")
    path = bench_dir / f"{suite}.json"
    t0 = time.perf_counter()
    _prepare_buffers(spec, data_root)

    def one(cell: Cell) -> list[dict[str, Any]]:
        c0 = time.perf_counter()
        r = _run_subprocess(cell, data_root, jobs)
        print(f"[bench] {cell.id}: {time.perf_counter() - c0:.0f} s  "
              + "  ".join(f"{x['metric']} {x['mean']:.2f}±{x['std']:.2f}" for x in r[:3]), flush=True)
        return r

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        for cell, new in zip(cells, ex.map(one, cells)):
            merge_rows(path, cell.owns, new)  # every finished cell is kept even if a later one fails
    print(f"[bench] suite {suite}: {len(cells)} cells in {time.perf_counter() - t0:.0f} s -> {path}")
    return render(bench_dir, out_dir / "BENCHMARKS.md", sdir)
