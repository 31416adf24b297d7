"""DAVDD vs DM from the same initialisation on av-digits(-hard): val sweep and test cells.

Every run distils with the quick configs (configs/av/{davdd,dm}_<dataset>.yaml) on the TRAIN split of
``val_fraction = 0.2`` (takes 14-49; takes 5-13 are the val split), with factor 2 for both methods (``*-f1`` variants:
factor 1) so that DM and DAVDD start from the identical herding initialisation (same seed, same code path). Phase ``val`` evaluates on the
val split (choosing lr and weights); phase ``test`` evaluates the chosen settings on the test split. Evaluation:
ConvNet, the common protocol, last epoch, fused (mean of softmaxes) accuracy, ``--eval-seeds`` seeds per set.

    cd <repo> && PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/studies/davdd_targets/run.py \
        --phase val --cells hard:1 --variants dm,davdd,davdd-fresh.5

Results are appended (one JSON record per line) to ``results.jsonl`` next to this script and summarised into
``results.json`` (mean ± std per (phase, dataset, ipc, variant)).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mmdistill.config import from_dict
from mmdistill.data import load_dataset
from mmdistill.distill import get_method
from mmdistill.distill.base import Budget, run
from mmdistill.evaluate.protocol import default_protocol, evaluate_set
from mmdistill.runs import resolve_run_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DATASETS = {"hard": "av-digits-hard", "digits": "av-digits"}
VAL_FRACTION = 0.2

# variant -> (method, param overrides on top of the method's quick config). Every variant uses factor 2.
VARIANTS: dict[str, tuple[str, dict]] = {
    "init": ("dm", {"iterations": 0}),
    "dm": ("dm", {}),
    "dm-lr1": ("dm", {"lr_audio": 1.0, "lr_visual": 1.0}),
    "davdd": ("davdd", {}),
    "davdd-lr0.1": ("davdd", {"lr_audio": 0.1, "lr_visual": 0.1}),
    "davdd-lr0.5": ("davdd", {"lr_audio": 0.5, "lr_visual": 0.5}),
    "davdd-fresh.5": ("davdd", {"fresh_prob": 0.5}),
    "davdd-com10": ("davdd", {"lambda_common": 10.0, "lambda_intermodal": 10.0, "lambda_sample": 10.0, "lambda_align": 10.0}),
    "davdd-com100": ("davdd", {"lambda_common": 100.0, "lambda_intermodal": 100.0, "lambda_sample": 100.0,
                               "lambda_align": 100.0}),
    "davdd-fresh.5-com10": ("davdd", {"fresh_prob": 0.5, "lambda_common": 10.0, "lambda_intermodal": 10.0,
                                      "lambda_sample": 10.0, "lambda_align": 10.0}),
    "init-f1": ("dm", {"iterations": 0, "factor": 1}),
    "dm-f1": ("dm", {"factor": 1}),
    "davdd-fresh.5-com10-f1": ("davdd", {"factor": 1, "fresh_prob": 0.5, "lambda_common": 10.0, "lambda_intermodal": 10.0,
                                         "lambda_sample": 10.0, "lambda_align": 10.0}),
    "davdd-private": ("davdd", {"no_common": True, "no_intermodal": True, "no_prototypes": True, "no_infonce": True}),
}


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def one(phase: str, key: str, ipc: int, variant: str, syn_seed: int, eval_seeds: list[int], iterations: int | None) -> dict:
    ds_name = DATASETS[key]
    method, over = VARIANTS[variant]
    cfg = resolve_run_config(ROOT / "configs" / "av" / f"{method}_{ds_name}.yaml")
    data = {**cfg.data, "val_fraction": VAL_FRACTION}
    params = merge(cfg.params, {"factor": 2, **({"iterations": iterations} if iterations is not None and variant != "init" else {}),
                                **over})
    cls = get_method(method)
    mcfg = from_dict(cls.Config, params, where=variant)
    train = load_dataset(ds_name, "train", **data)
    target = load_dataset(ds_name, "val" if phase == "val" else "test", **data)
    t0, c0 = time.perf_counter(), time.process_time()
    d = cls(mcfg, train, Budget(ipc, "ipc"), syn_seed)
    with tempfile.TemporaryDirectory(prefix="davdd-study-") as tmp:
        syn = run(d, Path(tmp) / "run", checkpoint_every=max(1, mcfg.iterations), progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    proto = default_protocol("classification", seeds=eval_seeds, **{k: v for k, v in cfg.eval.items() if k != "seeds"})
    res = evaluate_set(syn, train, target, proto)
    rec = {"phase": phase, "dataset": ds_name, "ipc": ipc, "variant": variant, "method": method, "overrides": over,
           "syn_seed": syn_seed, "eval_seeds": eval_seeds, "iterations": mcfg.iterations, "factor": mcfg.factor,
           "data": data, "distill_wall_s": round(wall, 1), "distill_cpu_s": round(cpu, 1),
           "metrics": {k.removesuffix("_acc"): {"mean": v["mean"], "std": v["std"], "values": v.get("per_seed")}
                       for k, v in res.metrics.items()},
           "bank": syn.meta.get("bank"), "torch": torch.__version__}
    return rec


def summarise() -> None:
    recs = [json.loads(l) for l in (HERE / "results.jsonl").read_text().splitlines() if l.strip()]
    groups: dict[tuple, list[dict]] = {}
    for r in recs:
        groups.setdefault((r["phase"], r["dataset"], r["ipc"], r["variant"]), []).append(r)
    out = []
    for (phase, ds, ipc, variant), rs in sorted(groups.items()):
        row = {"phase": phase, "dataset": ds, "ipc": ipc, "variant": variant, "sets": sorted({r["syn_seed"] for r in rs}),
               "overrides": rs[0]["overrides"], "iterations": rs[0]["iterations"]}
        for m in ("fused", "audio", "visual"):
            vals = [v for r in rs for v in (r["metrics"].get(m, {}).get("values") or [r["metrics"].get(m, {}).get("mean")])
                    if v is not None]
            if vals:
                row[m] = {"mean": round(statistics.fmean(vals), 2), "std": round(statistics.stdev(vals) if len(vals) > 1 else 0.0, 2), "n": len(vals)}
        row["distill_wall_s"] = round(statistics.fmean(r["distill_wall_s"] for r in rs), 1)
        if rs[0].get("bank"):
            row["bank"] = {k: v for k, v in rs[0]["bank"].items() if k != "dir"}
        out.append(row)
    (HERE / "results.json").write_text(json.dumps(out, indent=1) + "\n")
    for r in out:
        f = r.get("fused", {})
        print(f"{r['phase']:4s} {r['dataset']:15s} ipc {r['ipc']:2d} {r['variant']:22s} fused {f.get('mean', float('nan')):6.2f}"
              f" ± {f.get('std', float('nan')):5.2f} (n {f.get('n')})  audio {r.get('audio', {}).get('mean')} "
              f"visual {r.get('visual', {}).get('mean')}  {r['distill_wall_s']} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", choices=["val", "test"], required=True)
    ap.add_argument("--cells", default="hard:1", help="comma list of <hard|digits>:<ipc>")
    ap.add_argument("--variants", default="init,dm,davdd")
    ap.add_argument("--syn-seeds", default="0")
    ap.add_argument("--eval-seeds", default="0,1,2")
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--summarise-only", action="store_true")
    a = ap.parse_args(argv)
    if not a.summarise_only:
        for cell in a.cells.split(","):
            key, ipc = cell.split(":")
            for variant in a.variants.split(","):
                for s in (int(x) for x in a.syn_seeds.split(",")):
                    rec = one(a.phase, key, int(ipc), variant, s, [int(x) for x in a.eval_seeds.split(",")], a.iterations)
                    with open(HERE / "results.jsonl", "a", encoding="utf-8") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    print(f"{a.phase} {key}:{ipc} {variant} set {s}: fused {rec['metrics']['fused']['mean']:.2f} "
                          f"({rec['distill_wall_s']} s)", flush=True)
    summarise()
    return 0


if __name__ == "__main__":
    sys.exit(main())
