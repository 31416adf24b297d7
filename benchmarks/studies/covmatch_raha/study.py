"""CovMatch and RAHA on emoji: validation sweep of the data lrs, test-split comparison with a random real subset
under two evaluation protocols, and CPU seconds per iteration against LoRS in one process.

Commands (each appends its rows to results.json beside this file; run one at a time, OMP_NUM_THREADS=1):

    python benchmarks/studies/covmatch_raha/study.py sweep --method covmatch --pairs 100 --iterations 200 \\
        --grid '[{"lr_img": 100, "lr_txt": 1}]'
    python benchmarks/studies/covmatch_raha/study.py final --method covmatch --pairs 100 --iterations 500 \\
        --over '{"lr_img": 100, "lr_txt": 1}' --syn-seeds 0 1 2
    python benchmarks/studies/covmatch_raha/study.py random --pairs 100 --syn-seeds 0 1 2
    python benchmarks/studies/covmatch_raha/study.py timing --iterations 10
    python benchmarks/studies/covmatch_raha/study.py table     # markdown tables of results.json (README.md)

* sweep: distil on emoji train-minus-val (val_fraction 0.2), evaluate on val (common protocol, 3 seeds).
* final: distil on the full train split, evaluate on test under ``common`` (heads over the pretrained encoder,
  the vl suite's protocol) and ``covmatch`` (both towers train, CovMatch's learner, 100 epochs), 3 seeds each.
* random: the methods' initialisation (random real pairs; CovMatch and RAHA share it per seed) under both protocols.
* timing: s/iter of covmatch, raha, lors (and mdm) with their emoji configs, in one process after warm-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[3]
RESULTS = Path(__file__).with_name("results.json")
DATA_ROOT = str(ROOT.parent / "shared" / "data") if (ROOT.parent / "shared" / "data").is_dir() else "/work/shared/data"
EVAL_SEEDS = [0, 1, 2]
VAL_FRACTION = 0.2


def _load(split: str, val: bool):
    from mmdistill.data import load_dataset

    params = {"image_size": 32, **({"val_fraction": VAL_FRACTION} if val else {})}
    return load_dataset("emoji", split, DATA_ROOT, **params)


def _doc(method: str) -> dict[str, Any]:
    from mmdistill.config import load_yaml

    return load_yaml(ROOT / "configs" / "vl" / f"{method}_emoji.yaml")


def encoder_path(train) -> str:
    """The pretrained image encoder of the proxy's trunk (the same cached file the trajectory buffers use)."""
    from mmdistill.config import from_dict
    from mmdistill.experts.buffers import ExpertConfig, pretrain_encoder

    pre = _doc("covmatch")["params"]["proxy"]["pretrain"]
    return str(pretrain_encoder(train, from_dict(ExpertConfig, pre, where="pretrain"), progress=False))


def protocol(name: str, enc: str):
    from mmdistill.evaluate.protocol import default_protocol

    base = {"image_encoder_weights": enc, "seeds": EVAL_SEEDS}
    if name == "common":
        return default_protocol("retrieval", arch="convnet", trained_modules="heads", lr_source="fixed", **base)
    return default_protocol("retrieval", arch="convnet", protocol="covmatch", epochs=100, batch_size=128, **base)


def distil(method: str, train, pairs: int, over: dict[str, Any], iterations: int, seed: int):
    from mmdistill.config import from_dict
    from mmdistill.distill import Budget, get_method, run

    cls = get_method(method)
    params = {**_doc(method)["params"], **over, "iterations": iterations}
    cfg = from_dict(cls.Config, params, where=f"study {method}")
    c0, w0 = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmdistill-covmatch-study-") as tmp:
        syn = run(cls(cfg, train, Budget(pairs, "pairs"), seed), Path(tmp) / "s", progress=False)
        log = [json.loads(l) for l in (Path(tmp) / "s" / "log.jsonl").read_text().splitlines()]
    its = [r for r in log if "s_per_iter" in r]
    return syn, {"distill_cpu_s": round(time.process_time() - c0, 2), "distill_wall_s": round(time.perf_counter() - w0, 2),
                 "s_per_iter": round(sum(r["s_per_iter"] for r in its) / max(len(its), 1), 4),
                 "last_log": {k: v for k, v in (its[-1] if its else {}).items() if isinstance(v, (int, float))}}


def evaluate(syn, train, test, proto_name: str, enc: str) -> dict[str, Any]:
    from mmdistill.evaluate.protocol import evaluate_set

    res = evaluate_set(syn, train, test, protocol(proto_name, enc))
    r = res.metrics["r_mean"]
    return {"r_mean": r["mean"], "std": r["std"], "per_seed": r["per_seed"], "eval_wall_s": round(res.extra["eval_wall_s"], 1)}


def save(row: dict[str, Any]) -> None:
    from mmdistill.io import atomic_write_json

    rows = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    key = lambda r: json.dumps({k: r.get(k) for k in ("kind", "method", "pairs", "iterations", "over", "syn_seed", "protocol")},
                               sort_keys=True)
    rows = [r for r in rows if key(r) != key(row)] + [row]
    atomic_write_json(RESULTS, rows)
    print(json.dumps(row), flush=True)


def cmd_sweep(a) -> None:
    train, val = _load("train", True), _load("val", True)
    enc = encoder_path(train)
    for over in json.loads(a.grid):
        syn, info = distil(a.method, train, a.pairs, over, a.iterations, 0)
        save({"kind": "sweep", "split": "val", "method": a.method, "pairs": a.pairs, "iterations": a.iterations,
              "over": over, "syn_seed": 0, "protocol": "common", **info, **evaluate(syn, train, val, "common", enc),
              "n_train": len(train), "n_val": len(val)})


def cmd_final(a) -> None:
    train, test = _load("train", False), _load("test", False)
    enc = encoder_path(train)
    over = json.loads(a.over)
    for s in a.syn_seeds:
        syn, info = distil(a.method, train, a.pairs, over, a.iterations, s)
        for p in a.protocols:
            save({"kind": "final", "split": "test", "method": a.method, "pairs": a.pairs, "iterations": a.iterations,
                  "over": over, "syn_seed": s, "protocol": p, **info, **evaluate(syn, train, test, p, enc)})


def cmd_random(a) -> None:
    train, test = _load("train", False), _load("test", False)
    enc = encoder_path(train)
    for s in a.syn_seeds:
        syn, _ = distil("covmatch", train, a.pairs, {}, 0, s)  # 0 iterations = the shared random-real-pair init
        syn.meta["method"] = "random"
        for p in a.protocols:
            save({"kind": "final", "split": "test", "method": "random", "pairs": a.pairs, "iterations": 0, "over": {},
                  "syn_seed": s, "protocol": p, **evaluate(syn, train, test, p, enc)})


def cmd_timing(a) -> None:
    """Seconds per iteration of each method's emoji config at 100 pairs, same process, after one warm-up run."""
    from mmdistill.config import from_dict
    from mmdistill.distill import Budget, get_method, run
    from mmdistill.experts.buffers import ExpertConfig, ensure_buffer
    from mmdistill.data.root import cache_dir

    train = _load("train", False)
    out: dict[str, Any] = {}
    for method in a.methods:
        cls = get_method(method)
        params = dict(_doc(method)["params"])
        params.pop("lrs_by_budget", None)
        if "experts" in params:  # trajectory family / MDM: a cached buffer (trained once, not timed)
            ex = from_dict(ExpertConfig, params["experts"], where="experts")
            path = cache_dir() / "experts" / f"study-covmatch-emoji-{ex.key(train)}"
            ensure_buffer(train, ex, path, progress=False)
            params["buffer"] = str(path)
            if method == "mdm":
                params["init"] = "random"  # time the iterations, not the k-means init
        cfg = from_dict(cls.Config, {**params, "iterations": 2}, where=method)
        with tempfile.TemporaryDirectory() as tmp:  # warm-up: imports, caches, pretrained trunk
            run(cls(cfg, train, Budget(100, "pairs"), 0), Path(tmp) / "w", progress=False)
        cfg = from_dict(cls.Config, {**params, "iterations": a.iterations}, where=method)
        with tempfile.TemporaryDirectory() as tmp:
            c0 = time.process_time()
            run(cls(cfg, train, Budget(100, "pairs"), 0), Path(tmp) / "t", progress=False)
            cpu = time.process_time() - c0
            its = [json.loads(l) for l in (Path(tmp) / "t" / "log.jsonl").read_text().splitlines() if '"s_per_iter"' in l]
        s = [r["s_per_iter"] for r in its]
        out[method] = {"s_per_iter_mean": round(sum(s) / len(s), 4), "s_per_iter_median": round(sorted(s)[len(s) // 2], 4),
                       "cpu_s_total_incl_init": round(cpu, 2), "iterations": a.iterations}
        print(method, out[method], flush=True)
    ratio = {m: round(out[m]["s_per_iter_median"] / out["lors"]["s_per_iter_median"], 3) for m in out if "lors" in out}
    save({"kind": "timing", "method": "+".join(a.methods), "pairs": 100, "iterations": a.iterations, "over": {},
          "syn_seed": 0, "protocol": None, "per_method": out, "ratio_to_lors_median": ratio,
          "threads": torch.get_num_threads()})


def cmd_table(a) -> None:
    """Markdown tables from results.json: test r_mean per (method, pairs, protocol), the val sweep, the timing."""
    import statistics

    rows = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    print("| pairs | method | iterations | protocol | sets | test r_mean (mean ± std over sets) | per set | distill CPU s / set |")
    print("|---|---|---|---|---|---|---|---|")
    groups: dict[tuple, list] = {}
    for r in rows:
        if r["kind"] == "final":
            groups.setdefault((r["pairs"], r["method"], r["iterations"], r["protocol"]), []).append(r)
    order = {"random": 0, "covmatch": 1, "raha": 2}
    for (pairs, m, it, proto), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][3], order.get(kv[0][1], 9))):
        v = [r["r_mean"] for r in sorted(rs, key=lambda r: r["syn_seed"])]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        cpu = [r["distill_cpu_s"] for r in rs if r.get("distill_cpu_s") is not None]
        print(f"| {pairs} | {m} | {it} | {proto} | {len(v)} | {statistics.mean(v):.2f} ± {sd:.2f} | "
              f"{', '.join(f'{x:.2f}' for x in v)} | {statistics.mean(cpu):.0f} |" if cpu else
              f"| {pairs} | {m} | {it} | {proto} | {len(v)} | {statistics.mean(v):.2f} ± {sd:.2f} | "
              f"{', '.join(f'{x:.2f}' for x in v)} | - |")
    print()
    print("| method | iterations | setting | val r_mean (± std over 3 eval seeds) | distill CPU s |")
    print("|---|---|---|---|---|")
    for r in rows:
        if r["kind"] == "sweep":
            setting = ", ".join(f"{k} {v}" for k, v in r["over"].items()) or "initialisation"
            print(f"| {r['method']} | {r['iterations']} | {setting} | {r['r_mean']:.2f} ± {r['std']:.2f} | {r['distill_cpu_s']:.0f} |")
    for r in rows:
        if r["kind"] == "timing":
            print()
            print("| method | s/iter (median) | s/iter (mean) | ratio to LoRS (median) |")
            print("|---|---|---|---|")
            for m, t in r["per_method"].items():
                print(f"| {m} | {t['s_per_iter_median']:.3f} | {t['s_per_iter_mean']:.3f} | {r['ratio_to_lors_median'].get(m, '-')} |")


def main(argv: list[str] | None = None) -> None:
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("sweep")
    p.add_argument("--method", required=True)
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--grid", default="[{}]")
    p = sub.add_parser("final")
    p.add_argument("--method", required=True)
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--iterations", type=int, default=500)
    p.add_argument("--over", default="{}")
    p.add_argument("--syn-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--protocols", nargs="+", default=["common", "covmatch"])
    p = sub.add_parser("random")
    p.add_argument("--pairs", type=int, default=100)
    p.add_argument("--syn-seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--protocols", nargs="+", default=["common", "covmatch"])
    p = sub.add_parser("timing")
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--methods", nargs="+", default=["covmatch", "raha", "lors"])
    sub.add_parser("table")
    a = ap.parse_args(argv)
    {"sweep": cmd_sweep, "final": cmd_final, "random": cmd_random, "timing": cmd_timing, "table": cmd_table}[a.cmd](a)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    main()
