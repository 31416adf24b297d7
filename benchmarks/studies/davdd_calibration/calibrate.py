"""Run one DAVDD calibration point: the av suite's davdd cell with a run's overrides (see README.md).

    OMP_NUM_THREADS=1 python benchmarks/studies/davdd_calibration/calibrate.py NAME [dataset] [ipc]

NAME is a run of ``results.json`` (its ``overrides`` are merged over the davdd config's params). One synthetic
set (seed 0) x 3 evaluation seeds, ConvNet, as the rows of ``results.json``. At the default av-digits-hard IPC 1
the measured point replaces its entry in ``results.json``; other datasets/IPCs are printed only.

The overrides are fields of DAVDD as implemented at commit 0384fa3 (see README.md): run this script against
that version of the package.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
RESULTS = Path(__file__).resolve().parent / "results.json"


def calibration_cell(name: str, dataset: str = "av-digits-hard", ipc: int = 1):
    from mmdistill.bench.suite import load_suite, merge

    runs = {r["name"]: r for r in json.loads(RESULTS.read_text(encoding="utf-8"))["runs"]}
    if name not in runs:
        raise SystemExit(f"unknown run {name!r}; known: {', '.join(runs)}")
    for c in load_suite("av", REPO / "benchmarks" / "suites", REPO / "configs").cells:
        if c.dataset == dataset and c.row_method == "davdd" and c.budget == ipc:
            c.params, c.syn_seeds, c.label, c.extra_archs = merge(c.params, runs[name]["overrides"]), [0], f"cal:{name}", []
            return c
    raise SystemExit(f"the av suite has no davdd cell on {dataset} at IPC {ipc}")


def main(argv: list[str]) -> None:
    from mmdistill.bench.distill_cell import run_distill_cell
    from mmdistill.io import atomic_write_json

    name = argv[0]
    dataset = argv[1] if len(argv) > 1 else "av-digits-hard"
    ipc = int(argv[2]) if len(argv) > 2 else 1
    t0 = time.process_time()
    rows = run_distill_cell(calibration_cell(name, dataset, ipc))
    fused = next(r for r in rows if r["metric"] == "fused_acc")
    print(f"{name} on {dataset} IPC {ipc}: fused {fused['mean']:.2f} ± {fused['std']:.2f} "
          f"({time.process_time() - t0:.0f} CPU s)")
    if (dataset, ipc) == ("av-digits-hard", 1):
        res = json.loads(RESULTS.read_text(encoding="utf-8"))
        for r in res["runs"]:
            if r["name"] == name:
                r.update(fused_mean=round(fused["mean"], 2), fused_std=round(fused["std"], 2), cell_cpu_s=rows[0]["cpu_s"])
        atomic_write_json(RESULTS, res)


if __name__ == "__main__":
    main(sys.argv[1:])
