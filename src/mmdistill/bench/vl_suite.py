"""Benchmark suite ``vl``: image-text distillation on emoji (issue 5; vl-distillation.md §9).

Cells: emoji at 100, 200 and 500 pairs for the coresets (random, herding, k-center, forgetting), the four
trajectory-matching methods (mtt-vl, tesla-vl, lors, repblend; params from ``configs/vl/<method>_emoji.yaml``)
and the full-data bound; plus memory cells (MTT-VL unrolled vs TESLA-VL constant-memory at syn_steps 5 and 20,
a few iterations, rows carry ``syn_steps``).

Expert buffers are trained once per suite (:func:`prepare`, run by the bench cell before its work) into cache
paths keyed by the expert config; the method cells read them (``params.buffer``), and every cell's evaluation
loads the same pretrained image encoder (``image_encoder_weights``), so coresets, distilled sets and the full
bound share one protocol: trained modules, lr source and epochs are written in each row's protocol.

Cost (measured on the shared 2-core box at load 5-8, one thread per cell): 100-pair cells + full + memory
cells took 1450 s (full 154 s; coresets 58-380 s, herding's first cell trains the proxy; mtt-vl 223 s at
4.7 s/iter; tesla-vl 161 s; lors 66 s; repblend 48 s; memory cells 26-84 s). Expert buffers (prepare): the
pretrained encoder ~3 min, 3 full experts ~1.5 min, 3 heads experts ~10 s with one thread.

Target checks (``render.CHECKS["vl"]``): RepBlend > LoRS > MTT-VL > random on r_mean at 100 pairs;
RepBlend s/iter <= 0.2 x LoRS s/iter (same config, same run); TESLA-VL peak RSS at 20 inner steps <= 1.2 x
at 5 while MTT-VL's grows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported lazily below: suites.py imports this module to register the suite
    from .suites import Cell

DATASET = "emoji"
DATA: dict[str, Any] = {"image_size": 32}
BUDGETS = (100, 200, 500)
CORESETS = ["random", "herding", "k-center", "forgetting"]
METHODS = ["mtt-vl", "tesla-vl", "lors", "repblend"]
SEEDS = [0, 1, 2]
MEM_STEPS = (5, 20)
MEM_ITERATIONS = 3
SYN_SEEDS = [0]  # one distilled set per trajectory-matching cell, evaluated by 3 seeds (CPU budget)
THREADS = 1  # one intra-op thread per cell: measured 4-10x faster than 2 on the shared, loaded 2-core box
CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "vl"


def method_params(method: str) -> dict[str, Any]:
    """``params`` of the shipped quick config ``configs/vl/<method>_emoji.yaml`` (one source of truth)."""
    from ..config import load_yaml

    return dict(load_yaml(CONFIG_DIR / f"{method}_{DATASET}.yaml").get("params") or {})


def eval_fields() -> dict[str, Any]:
    """The evaluation protocol every vl cell uses (from the mtt-vl quick config's ``eval`` block)."""
    from ..config import load_yaml

    ev = dict(load_yaml(CONFIG_DIR / f"mtt-vl_{DATASET}.yaml").get("eval") or {})
    ev.pop("seeds", None)
    return ev


def buffer_path(experts: dict[str, Any]) -> Path:
    from ..data.root import cache_dir

    key = hashlib.sha256(json.dumps({"d": DATASET, "data": DATA, "e": experts}, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "experts" / f"bench-vl-{DATASET}-{experts.get('mode', 'full')}-{key}"


def _buffers() -> dict[str, tuple[dict[str, Any], Path]]:
    out = {}
    for m in METHODS:
        ex = method_params(m).get("experts") or {}
        ex = {"mode": "heads" if m == "repblend" else "full", **ex}
        out[m] = (ex, buffer_path(ex))
    return out


def encoder_weights() -> str:
    """The pretrained image encoder all cells evaluate with (copied into every buffer; same file)."""
    ex, path = _buffers()["mtt-vl"]
    return str(path / "image_encoder.safetensors")


def vl() -> list[Cell]:
    from .suites import Cell

    bufs = _buffers()
    ev = {**eval_fields(), "image_encoder_weights": encoder_weights()}
    cells = [Cell("vl", DATASET, "full", data=dict(DATA), eval=dict(ev), seeds=list(SEEDS))]
    for b in BUDGETS:
        for m in CORESETS:
            cells.append(Cell("vl", DATASET, m, b, "pairs", data=dict(DATA), eval=dict(ev), seeds=list(SEEDS),
                              params={"proxy": {"epochs": 4, "batch_size": 128, "lr": 0.001, "width": 32, "depth": 3}}))
        for m in METHODS:
            p = {**method_params(m), "buffer": str(bufs[m][1])}
            p["experts"] = bufs[m][0]
            cells.append(Cell("vl", DATASET, m, b, "pairs", data=dict(DATA), eval=dict(ev), seeds=list(SEEDS), params=p,
                              syn_seeds=list(SYN_SEEDS)))
    for m in ("mtt-vl", "tesla-vl"):
        for steps in MEM_STEPS:
            p = {**method_params(m), "buffer": str(bufs[m][1]), "experts": bufs[m][0],
                 "iterations": MEM_ITERATIONS, "syn_steps": steps, "minibatch": 0}
            cells.append(Cell("vl", DATASET, m, 100, "pairs", data=dict(DATA), eval=dict(ev), seeds=[0], params=p,
                              syn_seeds=[0], extra={"syn_steps": steps}))
    return cells


def prepare(cell: Cell, data_root: str | None) -> None:
    """Train the suite's expert buffers (and the shared pretrained encoder) once; later cells find them.
    Also pins the cell to ``THREADS`` intra-op threads."""
    import torch

    from ..config import from_dict

    torch.set_num_threads(THREADS)
    from ..data import load_dataset
    from ..experts.buffers import ExpertConfig, ensure_buffer

    ds = None
    for ex, path in _buffers().values():
        cfg = from_dict(ExpertConfig, ex, where="vl suite experts")
        if (path / "manifest.json").is_file() and len(list(path.glob("expert_*.safetensors"))) >= cfg.num_experts:
            continue
        ds = ds or load_dataset(DATASET, "train", data_root, **DATA)
        ensure_buffer(ds, cfg, path, progress=False)


# ------------------------------------------------------------------------------------------------ checks
def _row(rows: list[dict[str, Any]], method: str, metric: str, budget: int = 100, syn_steps: int | None = None):
    for r in rows:
        if (r["method"] == method and r["metric"] == metric and r.get("budget") == budget
                and r.get("syn_steps") == syn_steps):
            return r
    return None


def _fmt(r) -> str:
    return "missing" if r is None else f"{r['mean']:.2f} ± {r['std']:.2f}"


def check_vl(rows: list[dict[str, Any]]) -> list[str]:
    out = ["### Targets (issue 5)", ""]
    order = ["repblend", "lors", "mtt-vl", "random"]
    rm = {m: _row(rows, m, "r_mean") for m in order}
    if all(rm.values()):
        ok = all(rm[a]["mean"] > rm[b]["mean"] for a, b in zip(order, order[1:]))
        chain = " > ".join(f"{m} {rm[m]['mean']:.2f}" for m in order)
        out.append(f"- RepBlend > LoRS > MTT-VL > random on r_mean at 100 pairs: **{'met' if ok else 'MISSED'}** ({chain})")
        if not ok:
            bad = [f"{a} {rm[a]['mean']:.2f} <= {b} {rm[b]['mean']:.2f} (by {rm[b]['mean'] - rm[a]['mean']:.2f})"
                   for a, b in zip(order, order[1:]) if rm[a]["mean"] <= rm[b]["mean"]]
            out.append(f"  - failing pairs: {'; '.join(bad)}")
    else:
        out.append("- RepBlend > LoRS > MTT-VL > random on r_mean at 100 pairs: missing rows")
    rb, lo = _row(rows, "repblend", "s_per_iter"), _row(rows, "lors", "s_per_iter")
    if rb and lo:
        ratio = rb["mean"] / lo["mean"]
        out.append(f"- RepBlend s/iter <= 0.2 x LoRS s/iter (100 pairs): **{'met' if ratio <= 0.2 else 'MISSED'}** "
                   f"({rb['mean']:.3f} vs {lo['mean']:.3f} s/iter, ratio {ratio:.3f})")
    else:
        out.append("- RepBlend s/iter <= 0.2 x LoRS: missing rows")
    mem = {(m, s): _row(rows, m, "peak_rss_mb", 100, s) for m in ("tesla-vl", "mtt-vl") for s in MEM_STEPS}
    if all(mem.values()):
        lo_s, hi_s = MEM_STEPS
        t = mem[("tesla-vl", hi_s)]["mean"] / mem[("tesla-vl", lo_s)]["mean"]
        u = mem[("mtt-vl", hi_s)]["mean"] / mem[("mtt-vl", lo_s)]["mean"]
        ok = t <= 1.2 and u > 1.2
        out.append(f"- TESLA-VL peak RSS at {hi_s} steps <= 1.2 x at {lo_s} while MTT-VL's grows: **{'met' if ok else 'MISSED'}** "
                   f"(TESLA-VL {mem[('tesla-vl', lo_s)]['mean']:.0f} -> {mem[('tesla-vl', hi_s)]['mean']:.0f} MB, x{t:.2f}; "
                   f"MTT-VL {mem[('mtt-vl', lo_s)]['mean']:.0f} -> {mem[('mtt-vl', hi_s)]['mean']:.0f} MB, x{u:.2f})")
    else:
        out.append("- TESLA-VL vs MTT-VL peak memory: missing rows")
    return out


def register() -> None:
    from .render import CHECKS
    from .suites import PREPARE, SUITES

    SUITES["vl"] = vl
    PREPARE["vl"] = prepare
    checks = CHECKS.setdefault("vl", [])
    if check_vl not in checks:
        checks.append(check_vl)
