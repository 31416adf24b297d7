"""DAVDD's one-off encoder-bank cost as rows of ``benchmarks/av.json`` (method ``davdd-bank``).

Trains the davdd config's encoder bank and its decouplers into an empty directory, times both (wall and CPU
seconds) and merges the rows into ``benchmarks/av.json`` (``--print`` only prints them). Run from the repository
root::

    OMP_NUM_THREADS=1 python benchmarks/studies/davdd_bank_timing/timing.py [dataset ...]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


def bank_cell_id(dataset: str) -> str:
    return f"{dataset}/davdd-bank/full/convnet"


def bank_timing_rows(dataset: str = "av-digits-hard", data_root: str | None = None) -> list[dict[str, Any]]:
    """DAVDD's one-off bank cost as its own rows (method ``davdd-bank``): train the quick config's encoder bank and
    its decouplers into an EMPTY temporary directory (a cold cache), timing each phase in wall and CPU seconds.

    Rows: metrics ``bank_encoders_wall_s``/``_cpu_s`` (the K encoder pairs),
    ``bank_decouplers_wall_s``/``_cpu_s`` and ``bank_total_wall_s``/``_cpu_s``. Reproduce with
    ``python benchmarks/studies/davdd_bank_timing/timing.py``.
    """
    import os
    import tempfile
    import time

    import torch

    from mmdistill.bench.suite import load_suite
    from mmdistill.config import from_dict
    from mmdistill.data import load_dataset
    from mmdistill.distill import get_method
    from mmdistill.experts.bank import EncoderBank
    from mmdistill.seed import set_threads

    set_threads()
    cell = next(c for c in load_suite("av", REPO / "benchmarks" / "suites", REPO / "configs").cells
                if c.dataset == dataset and c.row_method == "davdd")
    method, params, DATA = cell.method, cell.params, cell.data
    cfg = from_dict(get_method(method).Config, params, where=f"bank timing {dataset}")
    train = load_dataset(dataset, "train", data_root, **DATA)
    with tempfile.TemporaryDirectory(prefix="mmdistill-bank-") as tmp:
        cfg.bank.path = tmp
        bank = EncoderBank(train, cfg.net, cfg.bank)
        w0, c0 = time.perf_counter(), time.process_time()
        bank.ensure()
        w1, c1 = time.perf_counter(), time.process_time()
        bank.ensure_decouplers(cfg.decoupler)
        w2, c2 = time.perf_counter(), time.process_time()
    vals = {"bank_encoders_wall_s": w1 - w0, "bank_encoders_cpu_s": c1 - c0, "bank_decouplers_wall_s": w2 - w1,
            "bank_decouplers_cpu_s": c2 - c1, "bank_total_wall_s": w2 - w0, "bank_total_cpu_s": c2 - c0}
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    base = {"suite": "av", "dataset": dataset, "method": "davdd-bank", "budget": len(train), "budget_unit": "pairs",
            "eval_arch": "convnet", "n_seeds": 1, "n_sets": None, "threads": torch.get_num_threads(),
            "wall_s": round(w2 - w0, 2), "cpu_s": round(c2 - c0, 2), "peak_rss_mb": round(peak, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2), "cell": bank_cell_id(dataset), "data_params": dict(DATA),
            "bank": {"pairs": cfg.bank.size, "num_seeds": cfg.bank.num_seeds, "snapshot_epochs": cfg.bank.snapshot_epochs,
                     "decoupler_epochs": cfg.decoupler.epochs},
            "command": f"python benchmarks/studies/davdd_bank_timing/timing.py {dataset}"}
    return [{**base, "metric": k, "mean": v, "std": 0.0, "per_seed": [v]} for k, v in vals.items()]


if __name__ == "__main__":
    from mmdistill.bench.runner import merge_rows

    args = [a for a in sys.argv[1:] if a != "--print"]
    for ds in args or ["av-digits", "av-digits-hard"]:
        rows = bank_timing_rows(ds)
        print("\n".join(f"{ds} {r['metric']}: {r['mean']:.1f}" for r in rows))
        if "--print" not in sys.argv:
            merge_rows(REPO / "benchmarks" / "av.json", [bank_cell_id(ds)], rows)
