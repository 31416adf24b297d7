"""spoken-emoji acceptance: do the modalities complement each other, and is the pairing instance-level?

1. Full-train classification (the common protocol of `mmdistill evaluate --real`): audio-only, visual-only and
   fused test accuracy (targets: each in 40-90 %, fused above both).
2. Audio–visual retrieval (the protocol of `mmdistill evaluate --task retrieval`) trained on the full train split:
   audio->image R@1 on test with concept-level positives, against chance (target >= 10x chance).
3. The same, trained on the train pairs re-paired at random within class (image rows permuted within each class,
   seeded), so that audio and image share only the class (target: within 2x chance). Context: a ranking that knows
   the class perfectly and nothing else scores R@1 = pairs per concept / pairs per class.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/studies/spoken_emoji_acceptance/run.py [--seeds 0 1 2] [--val]

Writes results.json (or results.val.json with --val: trained on train minus val, measured on val) beside this file.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch

from mmdistill.data import load_dataset
from mmdistill.evaluate.protocol import default_protocol, evaluate_real
from mmdistill.io import atomic_write_json

HERE = Path(__file__).resolve().parent


def repaired_within_class(ds, seed: int):
    """A copy of ``ds`` whose visual rows are permuted at random within each class."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.arange(len(ds))
    for c in range(ds.num_classes):
        idx = torch.nonzero(ds.labels == c).flatten()
        perm[idx] = idx[torch.randperm(idx.numel(), generator=g)]
    out = ds.subset(torch.arange(len(ds)))
    out.tensors["visual"] = ds.tensors["visual"][perm]
    out.pairing = "label"
    return out, perm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--val", action="store_true", help="train on train minus val, measure on val (val_fraction 0.25)")
    ap.add_argument("--data", default="{}", help="JSON loader params (default: the loader's defaults)")
    args = ap.parse_args()
    params = json.loads(args.data)
    if args.val:
        params["val_fraction"] = 0.25
    t0 = time.perf_counter()
    train = load_dataset("spoken-emoji", "train", None, **params)
    test = load_dataset("spoken-emoji", "val" if args.val else "test", None, **params)
    build_s = time.perf_counter() - t0
    out: dict = {"dataset": "spoken-emoji", "data_params": train.meta["params"], "eval_split": test.split,
                 "n_train": len(train), "n_test": len(test), "seeds": args.seeds, "load_s": round(build_s, 1),
                 "torch": torch.__version__, "machine": platform.machine(), "threads": torch.get_num_threads()}

    cls = evaluate_real(train, test, default_protocol("classification", seeds=args.seeds))
    out["classification"] = {"protocol": cls.protocol, "metrics": cls.metrics, "wall_s": round(cls.extra["eval_wall_s"], 1)}
    print("classification:", cls.line(), flush=True)

    proto = default_protocol("av-retrieval", seeds=args.seeds)
    ret = evaluate_real(train, test, proto)
    chance = ret.metrics["chance@1"]["mean"]
    out["retrieval"] = {"protocol": ret.protocol, "positives": ret.extra["positives"], "metrics": ret.metrics,
                        "a2i@1_over_chance": ret.metrics["a2i@1"]["mean"] / chance, "wall_s": round(ret.extra["eval_wall_s"], 1)}
    print("retrieval (instance pairs):", ret.line(), flush=True)

    per_seed = []
    for s in args.seeds:
        shuffled, _ = repaired_within_class(train, seed=1000 + s)
        one = evaluate_real(shuffled, test, replace(proto, seeds=[s]))
        per_seed.append({k: v["mean"] for k, v in one.metrics.items()})
    from mmdistill.evaluate.results import aggregate

    rep = aggregate(per_seed)
    out["retrieval_repaired_within_class"] = {"metrics": rep, "a2i@1_over_chance": rep["a2i@1"]["mean"] / chance,
                                              "repair_seed": "1000 + evaluation seed"}
    per_concept = len(test) / int(test.extra_labels["concept"].unique().numel())
    per_class = len(test) / test.num_classes
    out["class_oracle_a2i@1"] = 100.0 * per_concept / per_class
    out["class_oracle_over_chance"] = out["class_oracle_a2i@1"] / chance
    print("retrieval (re-paired within class):", "  ".join(f"{k} {v['mean']:.2f}" for k, v in rep.items()), flush=True)

    acc = {k: cls.metrics[k]["mean"] for k in ("audio_acc", "visual_acc", "fused_acc")}
    out["acceptance"] = {
        "unimodal_in_40_90": all(40.0 <= acc[k] <= 90.0 for k in ("audio_acc", "visual_acc")),
        "fused_above_both": acc["fused_acc"] > max(acc["audio_acc"], acc["visual_acc"]),
        "a2i_at_least_10x_chance": out["retrieval"]["a2i@1_over_chance"] >= 10.0,
        "repaired_within_2x_chance": out["retrieval_repaired_within_class"]["a2i@1_over_chance"] <= 2.0,
    }
    out["total_wall_s"] = round(time.perf_counter() - t0, 1)
    name = "results.val.json" if args.val else "results.json"
    atomic_write_json(HERE / name, out)
    print(json.dumps(out["acceptance"]), f"a2i/chance {out['retrieval']['a2i@1_over_chance']:.1f}x, re-paired "
          f"{out['retrieval_repaired_within_class']['a2i@1_over_chance']:.1f}x, class oracle {out['class_oracle_over_chance']:.1f}x")


if __name__ == "__main__":
    main()
