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

Issue 6 (MDM, :func:`check_mdm`): ``mdm`` cells at 100/200/500 pairs (``configs/vl/mdm_emoji.yaml``; it reads the
same full-mode expert buffer as MTT-VL/TESLA-VL/LoRS, trained once by :func:`prepare`), ablations at 100 pairs
(``MDM_ABLATIONS``: init noise/random, teacher pretrained/expert/naive, loss without the agreement / discrepancy
GKE or InfoNCE only; k-means init + mixed teacher + all terms is the ``mdm`` row itself) and follow-up cells
(``MDM_FOLLOWUPS``: iterations 0 and 80, the text-vector lr sweep incl. the paper's lr 100, the script's real batch 256, the biased MMD estimate). Rows carry ``distill_wall_s`` and ``distill_cpu_s`` of the distillation
alone (one-off library imports warmed first in every cell, expert training excluded) and ``experts_wall_s``, the
buffer's recorded training time, reported once and never added. Target: MDM r_mean >= LoRS r_mean - LoRS std
at 100 pairs AND MDM distill wall <= 0.1 x LoRS's, with the LoRS 100-pair cell re-run in the same
``mmdistill bench --suite vl --only emoji/mdm emoji/lors/100pairs --jobs 1`` invocation as the MDM cells.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .vl_tm_followups import check_followups, followup_cells, speed_buffers

if TYPE_CHECKING:  # imported lazily below: suites.py imports this module to register the suite
    from .suites import Cell

DATASET = "emoji"
DATA: dict[str, Any] = {"image_size": 32}
BUDGETS = (100, 200, 500)
CORESETS = ["random", "herding", "k-center", "forgetting"]
METHODS = ["mtt-vl", "tesla-vl", "lors", "repblend"]
# issue 6: MDM rows (label -> params over configs/vl/mdm_emoji.yaml); ablations and follow-ups at 100 pairs
MDM = "mdm"
MDM_ABLATIONS: dict[str, dict[str, Any]] = {
    "mdm-init-noise": {"init": "noise"}, "mdm-init-random": {"init": "random"},
    "mdm-teacher-pretrained": {"teacher": "pretrained"}, "mdm-teacher-expert": {"teacher": "expert"},
    "mdm-teacher-naive": {"teacher": "naive"},
    "mdm-no-agr": {"w_agr": 0.0}, "mdm-no-dis": {"w_dis": 0.0}, "mdm-infonce-only": {"w_agr": 0.0, "w_dis": 0.0},
}
MDM_FOLLOWUPS: dict[str, dict[str, Any]] = {
    "mdm-iters-0": {"iterations": 0}, "mdm-iters-5": {"iterations": 5}, "mdm-iters-80": {"iterations": 80},
    "mdm-anchor-expert-init": {"anchor": "expert_init"},
    "mdm-paper-lr": {"lr_txt": 100.0}, "mdm-lr-txt-1": {"lr_txt": 1.0}, "mdm-lr-txt-0.01": {"lr_txt": 0.01},
    "mdm-real-256": {"batch_real": 256}, "mdm-biased-mmd": {"unbiased": False},
}
SEEDS = [0, 1, 2]
MEM_STEPS = (5, 20)
MEM_ITERATIONS = 3
SYN_SEEDS = [0]  # one distilled set per trajectory-matching cell, evaluated by 3 seeds (CPU budget)
# 100 pairs (where the issue-5/6 targets are read): three distilled sets (syn seeds 0, 1, 2: different init subsets),
# each evaluated by 3 seeds, for mtt-vl, lors, repblend, mdm and the shared init; the rest keep one set (CPU budget)
SYN_SEEDS_100 = [0, 1, 2]
MULTI_SET_100 = ("mtt-vl", "tesla-vl", "lors", "repblend", "mdm", "tm-init")
# issue 5 follow-up: three sets also for the cheaper trajectory-matching cells at 200/500 pairs (CPU budget decides
# which; the rest keep one set)
MULTI_SET = {100: MULTI_SET_100, 200: ("lors", "repblend"), 500: ("mtt-vl", "lors", "repblend")}


def syn_seeds_for(method: str, budget: int) -> list[int]:
    return list(SYN_SEEDS_100 if method in MULTI_SET.get(budget, ()) else SYN_SEEDS)
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
    for m in [*METHODS, MDM]:
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
                              syn_seeds=syn_seeds_for(m, b)))
    cells += mdm_cells(bufs, ev)
    cells += followup_cells(bufs, ev)
    for m in ("mtt-vl", "tesla-vl"):
        for steps in MEM_STEPS:
            p = {**method_params(m), "buffer": str(bufs[m][1]), "experts": bufs[m][0],
                 "iterations": MEM_ITERATIONS, "syn_steps": steps, "minibatch": 0}
            cells.append(Cell("vl", DATASET, m, 100, "pairs", data=dict(DATA), eval=dict(ev), seeds=[0], params=p,
                              syn_seeds=[0], extra={"syn_steps": steps}))
    return cells


def mdm_cells(bufs: dict[str, tuple[dict[str, Any], Path]], ev: dict[str, Any]) -> list[Cell]:
    """Issue 6: MDM at every budget, its ablations and follow-ups at 100 pairs (same protocol as the other cells)."""
    from .suites import Cell

    base = {**method_params(MDM), "buffer": str(bufs[MDM][1]), "experts": bufs[MDM][0]}
    runs = [(b, None, {}) for b in BUDGETS]
    runs += [(100, label, over) for label, over in {**MDM_ABLATIONS, **MDM_FOLLOWUPS}.items()]
    return [Cell("vl", DATASET, MDM, b, "pairs", data=dict(DATA), eval=dict(ev), seeds=list(SEEDS), params={**base, **over},
                 syn_seeds=syn_seeds_for(label or MDM, b), label=label) for b, label, over in runs]


def prepare(cell: Cell, data_root: str | None) -> None:
    """Train the suite's expert buffers (and the shared pretrained encoder) once; later cells find them.
    Also pins the cell to ``THREADS`` intra-op threads."""
    import torch

    from ..config import from_dict

    torch.set_num_threads(THREADS)
    from ..data import load_dataset
    from ..experts.buffers import ExpertConfig, ensure_buffer

    ds = None
    for ex, path in [*_buffers().values(), *speed_buffers(_buffers())]:
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
        chain = " > ".join(f"{m} {_fmt(rm[m])}" for m in order)
        out.append(f"- RepBlend > LoRS > MTT-VL > random on r_mean at 100 pairs: **{'met' if ok else 'MISSED'}** ({chain})")
        if not ok:
            def gap(a: str, b: str) -> str:
                d, sd = rm[b]["mean"] - rm[a]["mean"], max(rm[a]["std"], rm[b]["std"])
                return (f"{a} {rm[a]['mean']:.2f} <= {b} {rm[b]['mean']:.2f} (by {d:.2f}; "
                        f"{'within' if d <= sd else 'beyond'} one std, {sd:.2f})")
            bad = [gap(a, b) for a, b in zip(order, order[1:]) if rm[a]["mean"] <= rm[b]["mean"]]
            out.append(f"  - failing pairs: {'; '.join(bad)}")
    else:
        out.append("- RepBlend > LoRS > MTT-VL > random on r_mean at 100 pairs: missing rows")
    # CPU s/iter when recorded (wall s/iter of cells run at different times depends on the box's load)
    unit = "CPU s/iter" if _row(rows, "repblend", "cpu_s_per_iter") and _row(rows, "lors", "cpu_s_per_iter") else "s/iter"
    metric = "cpu_s_per_iter" if unit == "CPU s/iter" else "s_per_iter"
    rb, lo = _row(rows, "repblend", metric), _row(rows, "lors", metric)
    if rb and lo:
        ratio = rb["mean"] / lo["mean"]
        out.append(f"- RepBlend s/iter <= 0.2 x LoRS s/iter (100 pairs, quick config: width-32 encoder; width 128 below): **{'met' if ratio <= 0.2 else 'MISSED'}** "
                   f"({rb['mean']:.3f} vs {lo['mean']:.3f} {unit}, ratio {ratio:.3f})")
        sp = {k: _row(rows, k, "cpu_s_per_iter") for k in ("lors-w128", "repblend-w128", "lors-w128-s8", "repblend-w128-s8")}
        if unit == "CPU s/iter" and all(sp.values()):
            r5 = sp["repblend-w128"]["mean"] / sp["lors-w128"]["mean"]
            r8 = sp["repblend-w128-s8"]["mean"] / sp["lors-w128-s8"]["mean"]
            verdict = lambda r: "met" if r <= 0.2 else "missed"  # noqa: E731
            out.append(f"  - by config: width 32 / 5 student steps (quick config) {ratio:.3f} {verdict(ratio)}; width 128 / "
                       f"5 steps {r5:.3f} {verdict(r5)}; width 128 / 8 steps (the papers' syn_steps) {r8:.3f} {verdict(r8)}. "
                       "RepBlend saves the unrolled encoder: at width 32 the projection heads dominate both methods, and "
                       "at 5 steps RepBlend's one encoder pass covers ~67 distinct images against LoRS's 100 image passes, "
                       "at 8 steps ~83 against 160 (cost model and profile under the trajectory-matching controls).")
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


def _pm(r) -> str:
    return "–" if r is None else f"{r['mean']:.2f} ± {r['std']:.2f}"


def _sec(r) -> str:
    return "–" if r is None else f"{r['mean']:.1f}"


def check_mdm(rows: list[dict[str, Any]]) -> list[str]:
    """Issue 6: MDM next to LoRS and RepBlend, the quality/time target, ablations, follow-ups (all from rows)."""
    out = ["### MDM (issue 6)", "",
           "Distillation time = the method's init (k-means, buffer opening) + all iterations, in the cell's own process, "
           "one thread; expert training is excluded (`experts_wall_s`: the shared full-mode buffer, trained once). "
           "LoRS/RepBlend rows are the suite's latest run of those cells (issue 5's configs); only LoRS at 100 pairs is "
           "re-run together with the MDM cells for the time target.", "",
           "| pairs | method | r_mean | distill wall s | distill CPU s | s/iter |", "|---|---|---|---|---|---|"]
    for b in BUDGETS:
        for m in (MDM, "lors", "repblend"):
            out.append(f"| {b} | {m} | {_pm(_row(rows, m, 'r_mean', b))} | {_sec(_row(rows, m, 'distill_wall_s', b))} | "
                       f"{_sec(_row(rows, m, 'distill_cpu_s', b))} | {_fmt3(_row(rows, m, 's_per_iter', b))} |")
    ex = _row(rows, MDM, "experts_wall_s")
    out += ["", f"- Expert buffer (3 full-mode experts x 3 epochs, shared by MTT-VL, TESLA-VL, LoRS and MDM): "
                f"{_sec(ex)} s of recorded expert training (plus the one-off encoder pretraining), counted once, not in any "
                "distillation time above."]
    md, lo = _row(rows, MDM, "r_mean"), _row(rows, "lors", "r_mean")
    mw, lw = _row(rows, MDM, "distill_wall_s"), _row(rows, "lors", "distill_wall_s")
    mc, lc = _row(rows, MDM, "distill_cpu_s"), _row(rows, "lors", "distill_cpu_s")
    if md and lo and mw and lw:
        q_ok = md["mean"] >= lo["mean"] - lo["std"]
        ratio = mw["mean"] / lw["mean"]
        ok = q_ok and ratio <= 0.1
        cpu = f"; CPU {mc['mean']:.1f} vs {lc['mean']:.1f} s, ratio {mc['mean'] / lc['mean']:.3f}" if mc and lc else ""
        out.append(f"- Target: MDM r_mean >= LoRS r_mean - std AND MDM distill wall <= 0.1 x LoRS's (100 pairs): "
                   f"**{'met' if ok else 'MISSED'}** (quality {'met' if q_ok else 'MISSED'}: {md['mean']:.2f} vs "
                   f"{lo['mean']:.2f} - {lo['std']:.2f} = {lo['mean'] - lo['std']:.2f}; time {'met' if ratio <= 0.1 else 'MISSED'}: "
                   f"{mw['mean']:.1f} vs {lw['mean']:.1f} s wall, ratio {ratio:.3f}{cpu})")
        if ratio > 0.1:
            out.append(f"  - time missed by {ratio / 0.1:.1f}x: MDM would need <= {0.1 * lw['mean']:.1f} s wall.")
            z = _row(rows, "mdm-iters-0", "distill_wall_s")
            zc = _row(rows, "mdm-iters-0", "distill_cpu_s")
            it = _row(rows, MDM, "distill_cpu_s")
            lsi = _row(rows, "lors", "s_per_iter")
            if zc and it and lsi and lc:
                n_it = int(method_params(MDM).get("iterations", 20)) or 1
                per = (it["mean"] - zc["mean"]) / n_it
                lors_per = lc["mean"] / max(1, int(method_params("lors").get("iterations", 40)))
                out.append(f"  - per iteration: MDM {per:.3f} s CPU (teacher merge + forward of the real and synthetic "
                           f"batches + backward to the data) vs LoRS {lors_per:.3f} s CPU; but LoRS's emoji config runs only "
                           f"{method_params('lors').get('iterations')} iterations (the papers' LoRS needs 850-2350 to its best, MDM "
                           "Table 3 in vl-distillation.md §3).")
            if z:
                out.append(f"  - floor: the k-means initialisation alone (iterations 0: teacher features of all "
                           f"real pairs + scikit-learn k-means) takes {z['mean']:.1f} s wall"
                           + (f" / {zc['mean']:.1f} s CPU" if zc else "") + f" = {z['mean'] / lw['mean']:.2f} x LoRS's wall time.")
        fast = [(r["mean"], m) for m in ("mdm-iters-0", "mdm-iters-5", MDM)
                if (r := _row(rows, m, "distill_wall_s")) and (q := _row(rows, m, "r_mean")) and q["mean"] >= lo["mean"] - lo["std"]]
        if fast:
            t, m = min(fast)
            out.append(f"- Time to LoRS's quality: `{m}` reaches r_mean {_row(rows, m, 'r_mean')['mean']:.2f} >= "
                       f"{lo['mean'] - lo['std']:.2f} in {t:.1f} s wall = {t / lw['mean']:.3f} x LoRS's "
                       f"(CPU {_row(rows, m, 'distill_cpu_s')['mean'] / lc['mean']:.3f} x)." if lc and _row(rows, m, "distill_cpu_s")
                       else f"- Time to LoRS's quality: `{m}` in {t:.1f} s wall = {t / lw['mean']:.3f} x LoRS's.")
    else:
        out.append("- Target (MDM vs LoRS at 100 pairs): missing rows")
    out += ["", "Ablations at 100 pairs (`mdm` = k-means init + mixed teacher + all loss terms):", "",
            "| group | variant | r_mean | distill wall s |", "|---|---|---|---|"]
    groups = [("init", [("kmeans", MDM), ("random", "mdm-init-random"), ("noise", "mdm-init-noise")]),
              ("teacher", [("mixed", MDM), ("naive", "mdm-teacher-naive"), ("expert", "mdm-teacher-expert"),
                           ("pretrained", "mdm-teacher-pretrained")]),
              ("loss", [("all terms", MDM), ("no agreement GKE", "mdm-no-agr"), ("no discrepancy GKE", "mdm-no-dis"),
                        ("InfoNCE only", "mdm-infonce-only")]),
              ("iterations", [("0 (init only)", "mdm-iters-0"), ("5", "mdm-iters-5"), ("20 (config)", MDM),
                              ("80", "mdm-iters-80")]),
              ("mixed-teacher anchor", [("fresh heads (paper)", MDM), ("expert's epoch-0 heads", "mdm-anchor-expert-init")]),
              ("lr_txt (lr_img 100)", [("100 (paper)", "mdm-paper-lr"), ("1", "mdm-lr-txt-1"), ("0.1 (config)", MDM),
                                       ("0.01", "mdm-lr-txt-0.01")]),
              ("real batch", [("64 (config)", MDM), ("256 (script)", "mdm-real-256")]),
              ("MMD estimate", [("unbiased, clamped at 0 (code)", MDM), ("biased (plain means, paper text)", "mdm-biased-mmd")])]
    for g, variants in groups:
        for v, m in variants:
            out.append(f"| {g} | {v} | {_pm(_row(rows, m, 'r_mean'))} | {_sec(_row(rows, m, 'distill_wall_s'))} |")
    out += ["", *MDM_NOTES]
    return out


def _fmt3(r) -> str:
    return "–" if r is None else f"{r['mean']:.3f}"


# Notes rendered under the MDM table (experiments behind the emoji config; numbers from the runs named here).
MDM_NOTES: list[str] = [
    "Notes (MDM on emoji):",
    "",
    "- Configuration: `configs/vl/mdm_emoji.yaml` keeps the paper's loss (λ 0.8/0.8, σ 0.5, unbiased, sqrt), α 0.5, "
    "momentum 0.5, clip 1.0 and synthetic batch 64; CPU-scale choices: 20 iterations, lr_img 100 / lr_txt 0.1 (the "
    "paper's lr 100 on our unit-norm MiniLM text vectors collapses retrieval, `mdm-paper-lr`), real batch 64 "
    "(`mdm-real-256` is the script's 256), k-means seeded with random pairs (the code's KMeans; k-means++ costs ~0.7 s "
    "CPU more). lr_txt was chosen by a one-evaluation-seed sweep before these runs (20 iterations: lr_txt 100 → 2.3, "
    "10 → 6.8, 1 → 10.9, 0.1 → 13.6-14.0, 0.01 → 11.8; init only 11.9); the `mdm-lr-*` rows re-measure it with 3 seeds.",
    "- Target: LoRS here is the shipped emoji config (200 iterations, soft InfoNCE against S, lr_img 100 and, at "
    "100 pairs, the val-chosen lr_txt 0.3; session 4), re-run in the same `--only` invocation as `mdm`, `mdm-iters-0` "
    "and `mdm-iters-5` (three sets each for `lors` and `mdm`; the other MDM rows come from earlier invocations, and "
    "`mdm` reproduced its earlier three-set result, 15.10 ± 1.36, exactly). With lr_txt 1.0 (session 3) LoRS was "
    "13.59 ± 1.09 and the same target was met as well. Against the earlier LoRS config (40 iterations, WBCE: r_mean 7.62 ± 0.43, 26.8 s wall / 14.0 s "
    "CPU; rows of commit e97c14e) MDM's 20 iterations (6.7 s) missed the wall-time part by 2.5x while its k-means "
    "initialisation alone (1.8 s) met it: the ratio depends mostly on how many iterations LoRS runs (the papers' "
    "LoRS needs 850-2350, MDM Table 3), since MDM's cost is a fixed k-means init plus ~0.1 s CPU per iteration.",
    "- Iterations: the k-means initialisation carries the quality at this scale; 0 / 5 / 20 / 80 iterations are "
    "within about one point of each other (80 slightly lower). The shipped 20 were chosen by the sweep above, "
    "before any target was measured.",
    "- Teachers: the paper's ranking (mixed > naive > expert >> pretrained) does not reproduce. Here every teacher "
    "lands within a few points (this run: pretrained and expert highest, mixed and naive lowest; an earlier run with "
    "k-means++ seeding, commit 627914a, ranked naive first and mixed last), and since each teacher also builds its "
    "own k-means init and each cell distils one set, these gaps are mostly set-level noise. Likely cause: weak "
    "experts (3 epochs at batch 1024: final InfoNCE 6.1 vs 6.9 at chance; their heads move 5 % of their norm), so "
    "a merge of two checkpoints is close to its anchor (mean Model-Stock t = 0.53 over 30 draws; merged heads 37 % of "
    "the way from the fresh anchor head to an expert's, measured with `MDM.teacher()` on the suite's buffer). The "
    "expert-init anchor gives the same r_mean as the paper's fresh-head anchor, so the anchor is not the issue.",
    "- Loss terms: InfoNCE alone, without either GKE term, and all terms are within noise of each other (the paper's "
    "spread is 21.0-21.9); init matters most (noise init 1.6 vs real pairs 14-15; the paper: 0.5 vs 20.6-21.9). "
    "With the shipped config the unbiased MMD² (64 synthetic vs 64 real pairs) is negative, so clamped to 0 with no "
    "gradient, in 18 of 20 iterations for both GKE terms (log of `mmdistill distill --config "
    "configs/vl/mdm_emoji.yaml`, seed 0): the real-pair init already matches the real distribution within the "
    "estimator's noise. The biased estimate (plain means, always positive, so both terms always push; "
    "`mdm-biased-mmd`) gives the same r_mean, so the flat loss ablation is not only an artefact of the clamp.",
    "- Cells with three distilled sets (syn seeds 0-2) x 3 evaluation seeds: "
    + "; ".join(f"{b} pairs: {', '.join(m for m in ms if m != 'tm-init')}" for b, ms in MULTI_SET.items())
    + " (and the shared init `tm-init`); every other cell (ablations, follow-ups, the rest at 200/500 pairs) one set "
    "(syn seed 0) evaluated by 3 seeds, whose ± "
    "covers evaluation noise only, so differences of one to two points between ablation rows are within the noise "
    "of the set itself (mdm at 100 pairs: 15.26 for syn seed 0 alone vs 15.10 ± 1.36 over three sets).",
]


def register() -> None:
    from .render import CHECKS
    from .suites import PREPARE, SUITES

    SUITES["vl"] = vl
    PREPARE["vl"] = prepare
    checks = CHECKS.setdefault("vl", [])
    if check_vl not in checks:
        checks.append(check_vl)
    if check_mdm not in checks:
        checks.append(check_mdm)
    if check_followups not in checks:
        checks.insert(1, check_followups)
