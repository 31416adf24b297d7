"""Validation curves: does a longer distillation still help, and at which step size?

Each curve distils one shipped config through the package's own run loop (``mmdistill.runs.distill``) on the TRAIN
part of ``data.val_fraction`` and lets the loop evaluate the set on the VAL split every ``--eval-every`` iterations,
from the initial set (0 iterations) to the saved one (``run.eval_every``; one evaluation seed = the run's seed; the
common protocol, last epoch). Nothing here looks at the test split.

    cd <repo> && PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/studies/convergence/curves.py \
        --curves dm-hard10-f2-lr0.2,dm-hard10-f2-lr1 --iterations 1000 --eval-every 100

Each finished curve is appended to ``results.jsonl`` beside this script (one JSON record per curve: its settings,
the val metric after 0, E, 2E, ... iterations, the distillation CPU time); ``--summarise`` rewrites
``results.json`` (per curve: start, best, last, and the plateau: the first iteration whose val metric is within
``PLATEAU_TOL`` points of the best of the curve) and ``curves.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
VAL_FRACTION = 0.2
PLATEAU_TOL = 1.0  # points of the val metric

# name -> (shipped config, budget overrides + --set overrides). AV curves use the paper's factor 2.
CURVES: dict[str, tuple[str, list[str]]] = {
    "dm-hard10-f2-lr0.2": ("av/dm_av-digits-hard.yaml", ["params.factor=2"]),
    "dm-hard10-f2-lr1": ("av/dm_av-digits-hard.yaml", ["params.factor=2", "params.lr_audio=1.0", "params.lr_visual=1.0"]),
    "dm-hard10-f1-lr0.2": ("av/dm_av-digits-hard.yaml", []),
    "avdd-hard10-f2-lr0.2": ("av/avdd_av-digits-hard.yaml", ["params.factor=2"]),
    "davdd-hard10": ("av/davdd_av-digits-hard.yaml", []),
    "dm-se10-f2-lr0.2": ("av/dm_spoken-emoji.yaml", ["params.factor=2"]),
    "davdd-se10": ("av/davdd_spoken-emoji.yaml", []),
    "covmatch-emoji100": ("vl/covmatch_emoji.yaml", []),
    "raha-emoji100": ("vl/raha_emoji.yaml", []),
    "mdm-emoji100": ("vl/mdm_emoji.yaml", []),
}
METRIC = {"av": "val_fused_acc", "vl": "val_r_mean"}


def run_curve(name: str, iterations: int, eval_every: int, seed: int, extra: list[str]) -> dict[str, Any]:
    """Distil curve ``name`` for ``iterations`` with the run loop's periodic val evaluation; its record."""
    from mmdistill.runs import distill, resolve_run_config

    config, sets = CURVES[name]
    family = config.split("/")[0]
    overrides = [*sets, f"params.iterations={iterations}", f"run.eval_every={eval_every}", "run.eval_split=val",
                 f"data.val_fraction={VAL_FRACTION}", f"seed={seed}", *extra]
    cfg = resolve_run_config(ROOT / "configs" / config, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        c0, t0 = time.process_time(), time.perf_counter()
        run_dir, _ = distill(cfg, Path(tmp) / "run", progress=False)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {"curve": name, "config": config, "overrides": overrides, "seed": seed, **curve_points(log, METRIC[family]),
            "cpu_s": round(cpu, 1), "wall_s": round(wall, 1), "loss": loss_points(log, eval_every)}


def curve_points(log: list[dict[str, Any]], metric: str) -> dict[str, list[float]]:
    """(iterations done, val metric) of every evaluation in a run log: the start event's at 0, a step's at
    ``it + 1``, the done event's at its ``it`` (the iteration count)."""
    xs: list[float] = []
    ys: list[float] = []
    for r in log:
        ev = r.get("eval")
        if not isinstance(ev, dict) or metric not in ev:
            continue
        x = 0 if r.get("event") == "start" else (r["it"] if r.get("event") == "done" else r["it"] + 1)
        xs.append(x)
        ys.append(float(ev[metric]))
    return {"iters": xs, "val": ys, "metric": metric}  # type: ignore[dict-item]


def loss_points(log: list[dict[str, Any]], every: int) -> dict[str, list[float]]:
    """The logged ``loss`` every ``every`` iterations (mean over the window), to see whether it still falls."""
    losses = [(r["it"], float(r["loss"])) for r in log if "event" not in r and "loss" in r]
    out: dict[str, list[float]] = {"iters": [], "loss": []}
    for k in range(0, len(losses), max(1, every)):
        win = losses[k:k + every]
        out["iters"].append(win[-1][0] + 1)
        out["loss"].append(sum(v for _, v in win) / len(win))
    return out


def summarise(records: list[dict[str, Any]], tol: float = PLATEAU_TOL) -> dict[str, Any]:
    """Per curve (the last record of each name): start, best, last, and the plateau iteration."""
    out: dict[str, Any] = {}
    for r in records:
        xs, ys = r["iters"], r["val"]
        if not ys:
            continue
        best = max(ys)
        plateau = next(x for x, y in zip(xs, ys) if y >= best - tol)
        out[r["curve"]] = {"metric": r["metric"], "start": ys[0], "best": best, "best_at": xs[ys.index(best)],
                           "last": ys[-1], "iterations": xs[-1], "plateau_at": plateau, "cpu_s": r["cpu_s"],
                           "overrides": r["overrides"]}
    return out


def plot(records: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = sorted({r["metric"] for r in records})
    fig, axes = plt.subplots(1, len(fams), figsize=(6 * len(fams), 4), squeeze=False)
    for ax, fam in zip(axes[0], fams):
        for r in (r for r in records if r["metric"] == fam):
            ax.plot(r["iters"], r["val"], marker="o", label=r["curve"])
        ax.set_xlabel("distillation iterations")
        ax.set_ylabel(fam)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_records(path: Path) -> list[dict[str, Any]]:
    recs = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
    last: dict[str, dict[str, Any]] = {}
    for r in recs:
        last[r["curve"]] = r
    return list(last.values())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--curves", default="", help=f"comma-separated names of {sorted(CURVES)}")
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], help="extra config override for every curve")
    ap.add_argument("--summarise", action="store_true", help="rewrite results.json and curves.png from results.jsonl")
    ap.add_argument("--out", type=Path, default=HERE)
    a = ap.parse_args(argv)
    for name in filter(None, a.curves.split(",")):
        if name not in CURVES:
            ap.error(f"unknown curve {name!r}; known: {', '.join(sorted(CURVES))}")
        rec = run_curve(name, a.iterations, a.eval_every, a.seed, a.set)
        with open(a.out / "results.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"{name}: {rec['metric']} " + " ".join(f"{x}:{y:.1f}" for x, y in zip(rec["iters"], rec["val"]))
              + f"  ({rec['cpu_s']:.0f} CPU s)", flush=True)
    if a.summarise:
        recs = load_records(a.out / "results.jsonl")
        (a.out / "results.json").write_text(json.dumps(summarise(recs), indent=1) + "\n", encoding="utf-8")
        if recs:
            plot(recs, a.out / "curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
