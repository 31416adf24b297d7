"""Data-lr calibration of the trajectory-matching emoji configs on a validation split.

The shipped lrs (``configs/vl/<method>_emoji.yaml``) were calibrated at 100 pairs on the test split. This
module re-calibrates per budget without touching test: the emoji loader's ``val_fraction`` (data/emoji.py)
holds out a stratified share of the *train* concepts as split ``val``; expert buffers (and the pretrained
image encoder they share) are trained on train-minus-val; each sweep point distils one set (syn seed 0) from
train-minus-val with the method's emoji config and the overrides of the point, and is evaluated on ``val``
with the suite's protocol (heads over the buffer's pretrained encoder, fixed lr, last epoch, 3 evaluation
seeds). ``iterations 0`` is the set's initialisation, the baseline a point has to beat.

Results go to ``results.json`` beside this script (``--table`` prints them, :func:`sweep_lines`). Run from the
repository root::

    python benchmarks/studies/vl_val_sweep/sweep.py --method lors --pairs 500 --iterations 40 \\
        --grid '[{"lr_img": 100, "lr_txt": 1.0}, {"lr_img": 100, "lr_txt": 0.3}]'

The papers tune these lrs per budget (LoRS, arXiv 2406.01719; MTT-VL, arXiv 2308.07545).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

VAL_FRACTION = 0.2
DATA: dict[str, Any] = {"image_size": 32, "val_fraction": VAL_FRACTION}
EVAL_SEEDS = [0, 1, 2]
RESULTS = Path(__file__).resolve().parent / "results.json"
REPO = Path(__file__).resolve().parents[3]  # the checkout: configs/ lives there
DATASET = "emoji"


def method_params(method: str) -> dict[str, Any]:
    """``params`` of the shipped config ``configs/vl/<method>_emoji.yaml``."""
    from mmdistill.config import load_yaml

    return dict(load_yaml(REPO / "configs" / "vl" / f"{method}_{DATASET}.yaml").get("params") or {})


def eval_fields() -> dict[str, Any]:
    """The vl suite's evaluation protocol (the mtt-vl config's ``eval`` block, without its seeds)."""
    from mmdistill.config import load_yaml

    ev = dict(load_yaml(REPO / "configs" / "vl" / f"mtt-vl_{DATASET}.yaml").get("eval") or {})
    ev.pop("seeds", None)
    return ev


def val_buffer(method: str, experts: dict[str, Any] | None = None) -> tuple[dict[str, Any], Path]:
    """(experts config, cache path) of the method's expert buffer trained on train-minus-val.

    ``experts`` overrides fields of the config's ``experts`` block (e.g. ``{"batch_size": 128, "epochs": 12}``
    for converged experts); the buffer is keyed by the merged block, so each expert setting has its own."""
    from mmdistill.data.root import cache_dir

    ex = method_params(method).get("experts") or {}
    ex = {"mode": "heads" if method == "repblend" else "full", **ex, **(experts or {})}
    key = hashlib.sha256(json.dumps({"d": DATASET, "data": DATA, "e": ex}, sort_keys=True).encode()).hexdigest()[:12]
    return ex, cache_dir() / "experts" / f"calib-vl-{DATASET}-{ex['mode']}-{key}"


def run_point(method: str, pairs: int, over: dict[str, Any], iterations: int, syn_seed: int = 0,
              data_root: str | None = None) -> dict[str, Any]:
    """Distil one set on train-minus-val with ``over`` applied and evaluate it on val (see module docstring)."""
    import torch

    from mmdistill.config import from_dict
    from mmdistill.data import load_dataset
    from mmdistill.distill import Budget, get_method
    from mmdistill.distill.base import run
    from mmdistill.evaluate.protocol import default_protocol, evaluate_set
    from mmdistill.experts.buffers import ExpertConfig, ensure_buffer

    torch.set_num_threads(1)
    train = load_dataset(DATASET, "train", data_root, **DATA)
    val = load_dataset(DATASET, "val", data_root, **DATA)
    ex, path = val_buffer(method, over.get("experts"))
    ensure_buffer(train, from_dict(ExpertConfig, ex, where="val buffer"), path, progress=False)
    cls = get_method(method)
    base = {k: v for k, v in method_params(method).items() if k != "lrs_by_budget"}  # the sweep sets the lrs itself
    params = {**base, **over, "buffer": str(path), "experts": ex, "iterations": iterations}
    cfg = from_dict(cls.Config, params, where=f"val sweep {method}")
    c0 = time.process_time()
    with tempfile.TemporaryDirectory(prefix="mmdistill-valsweep-") as tmp:
        syn = run(cls(cfg, train, Budget(pairs, "pairs"), syn_seed), Path(tmp) / "s", progress=False)
    cpu = time.process_time() - c0
    ev = {**eval_fields(), "image_encoder_weights": str(path / "image_encoder.safetensors"), "seeds": EVAL_SEEDS}
    res = evaluate_set(syn, train, val, default_protocol(train.task, arch="convnet", **ev))
    r = res.metrics["r_mean"]
    return {"method": method, "pairs": pairs, "iterations": iterations, "over": over, "syn_seed": syn_seed,
            "r_mean": r["mean"], "std": r["std"], "per_seed": r["per_seed"], "distill_cpu_s": round(cpu, 2),
            "val_fraction": VAL_FRACTION, "n_train": len(train), "n_val": len(val), "eval_seeds": EVAL_SEEDS,
            "split": "val"}


def _key(p: dict[str, Any]) -> str:
    return json.dumps([p["method"], p["pairs"], p["iterations"], p["over"], p["syn_seed"]], sort_keys=True)


def save(point: dict[str, Any], path: Path = RESULTS) -> None:
    """Add ``point`` to ``path`` (replacing a point with the same key); an flock on a side file serialises
    concurrent sweeps (one per core) so none loses another's point."""
    import fcntl

    from mmdistill.io import atomic_write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
        rows = [r for r in rows if _key(r) != _key(point)] + [point]
        atomic_write_json(path, rows)


def load(path: Path = RESULTS) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def _label(over: dict[str, Any], iterations: int = 1) -> str:
    if iterations == 0:
        return "initialisation (no distillation)"
    def value(v: Any) -> str:
        if isinstance(v, dict):  # an experts override: "experts batch_size 128 epochs 12"
            return " ".join(f"{k} {value(x)}" for k, x in sorted(v.items()))
        return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else f"{v}"

    return (", ".join(f"{k} {value(v)}" for k, v in sorted(over.items()))
            or "100-pair config lrs (lr_img 100, lr_txt 1)")


def sweep_lines(rows: list[dict[str, Any]] | None = None) -> list[str]:
    """Markdown table of the val sweep (one line per point), grouped by budget and method, best point marked."""
    rows = load() if rows is None else rows
    if not rows:
        return []
    out = [f"Validation sweep of the data lrs (`python benchmarks/studies/vl_val_sweep/sweep.py`): emoji with "
           f"val_fraction {VAL_FRACTION} (val: {rows[0]['n_val']} caption-image pairs of held-out train concepts; "
           f"distillation and expert buffers on the other {rows[0]['n_train']} train pairs), one set per point (syn seed 0 unless the setting names another), r_mean on **val** "
           f"(mean ± std over evaluation seeds {EVAL_SEEDS}); the test split is not used. Iterations 0 = the set's "
           "initialisation.", "", "| pairs | method | iterations | setting | val r_mean | distill CPU s |",
           "|---|---|---|---|---|---|"]
    for b in sorted({r["pairs"] for r in rows}):
        for m in ("mtt-vl", "tesla-vl", "lors", "repblend"):
            pts = sorted((r for r in rows if r["pairs"] == b and r["method"] == m),
                         key=lambda r: (r["iterations"], _label(r["over"])))
            if not pts:
                continue
            best = {it: max((r for r in pts if r["iterations"] == it), key=lambda r: r["r_mean"])
                    for it in {r["iterations"] for r in pts} if it > 0}  # per run length
            for r in pts:
                mark = " (best)" if best.get(r["iterations"]) is r and sum(q["iterations"] == r["iterations"] for q in pts) > 1 else ""
                seed = f" (syn seed {r['syn_seed']})" if r.get("syn_seed") else ""
                out.append(f"| {b} | {m} | {r['iterations']} | {_label(r['over'], r['iterations'])}{seed}{mark} | {r['r_mean']:.2f} ± "
                           f"{r['std']:.2f} | {r['distill_cpu_s']:.0f} |")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--method")
    ap.add_argument("--pairs", type=int)
    ap.add_argument("--table", action="store_true", help="print the results table and exit")
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--grid", default="[{}]", help="JSON list of param overrides, one sweep point each")
    ap.add_argument("--syn-seed", type=int, default=0, help="seed of the distilled set (a second set re-checks a point)")
    ap.add_argument("--data-root", default=None)
    a = ap.parse_args(argv)
    if a.table:
        print("\n".join(sweep_lines()))
        return
    if not a.method or not a.pairs:
        ap.error("--method and --pairs are required (or --table)")
    for over in json.loads(a.grid):
        t0 = time.perf_counter()
        p = run_point(a.method, a.pairs, over, a.iterations if over.get("iterations") is None else int(over.pop("iterations")),
                      syn_seed=a.syn_seed, data_root=a.data_root)
        save(p)
        print(f"[val-sweep] {a.method} {a.pairs} it{p['iterations']} syn{a.syn_seed} {_label(over, p['iterations'])}: r_mean {p['r_mean']:.2f} ± "
              f"{p['std']:.2f} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
