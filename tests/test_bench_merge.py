"""Bench rows merge under a lock: writers in separate processes, each replacing its own cells many times over,
lose nothing (runner.merge_rows). Without the lock the read-modify-write races drop rows."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from mmdistill.bench.runner import load_rows, merge_rows

WRITERS, CELLS, ROUNDS = 4, 3, 15
pytestmark = pytest.mark.slow  # multi-process


def _writer(path: str, w: int, start) -> None:
    start.wait()
    for k in range(ROUNDS):
        for c in range(CELLS):
            cell = f"w{w}c{c}"
            merge_rows(Path(path), [cell], [{"cell": cell, "round": k, "pad": "x" * 2000}])


def test_concurrent_writers_keep_every_cell(tmp_path):
    path = tmp_path / "benchmarks" / "s.json"
    merge_rows(path, ["old"], [{"cell": "old", "round": -1}])
    ctx = mp.get_context("fork")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(path), w, start)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    rows = load_rows(path)
    cells = sorted(r["cell"] for r in rows)
    assert cells == sorted(["old"] + [f"w{w}c{c}" for w in range(WRITERS) for c in range(CELLS)])  # none lost, none doubled
    assert all(r["round"] == ROUNDS - 1 for r in rows if r["cell"] != "old")  # each cell holds its last write


def test_a_rerun_replaces_every_architecture_of_its_cell(tmp_path):
    """A cell re-run with fewer evaluation architectures (MMDISTILL_BENCH_EXTRA_ARCHS) drops the other
    architectures' rows of that cell: they would describe the previous run's set."""
    from mmdistill.bench.spec import Cell, KDCell

    path = tmp_path / "s.json"
    old = ["d/dm/10ipc/convnet", "d/dm/10ipc/lenet", "d/dm/1ipc/lenet", "d/dm-x/10ipc/lenet", "e/dm/10ipc/lenet",
           "d/dm/10ipc/lenet/syn_steps=5"]
    merge_rows(path, [], [{"cell": c} for c in old])
    cell = Cell(suite="s", dataset="d", method="dm", budget=10, unit="ipc")  # convnet only
    assert cell.owns("d/dm/10ipc/resnet18") and not cell.owns("d/dm/10ipc/lenet/syn_steps=5")
    merge_rows(path, cell.owns, [{"cell": "d/dm/10ipc/convnet", "new": True}])
    assert sorted(r["cell"] for r in load_rows(path)) == sorted(
        ["d/dm/10ipc/convnet", "d/dm/1ipc/lenet", "d/dm-x/10ipc/lenet", "e/dm/10ipc/lenet", "d/dm/10ipc/lenet/syn_steps=5"])
    kd = KDCell(suite="k", dataset="d", method="kd", teacher_modality="audio", student_modality="visual")
    assert kd.owns("d/audio->visual/kd/resnet18") and not kd.owns("d/visual->audio/kd/resnet18")
