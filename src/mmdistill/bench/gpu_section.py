"""The GPU section of BENCHMARKS.md, rendered from ``benchmarks/gpu.json`` (written by benchmarks/gpu/measure.py).

It shows every measured row (seconds per iteration, peak GPU memory) next to the published figures and checks
the targets:

* RepBlend ≤ 0.2 × LoRS seconds per iteration at Flickr30k shapes (published: 1.71 vs 11.5 s/iter, i.e. 0.15);
* TESLA-VL peak memory flat from 5 to 20 student steps: the growth may not exceed the 15 extra student parameter
  vectors a constant-memory pass stores by design (one per step, as the reference's ``student_params`` list) plus
  10 % of the 5-step peak; activation memory must not grow with the steps;
* ours ≤ 0.7 × the reference implementation's seconds per iteration for LoRS and RepBlend on the same GPU, with
  peak memory no higher;
* every method runs at paper shapes on CUDA without error, and the CUDA test subset (CPU vs CUDA) passes.

Published figures: RepBlend vs LoRS 1.71 vs 11.5 s/iter, 10.17 vs 21.78 GB peak, 40 vs 70 min per expert
trajectory (RepBlend, arXiv 2505.14705, efficiency table); MTT-VL vs TESLA-VL 71 vs 22 GB peak (CovMatch's
Table 1, one A100; arXiv 2510.18583); AVDD on VGGS-10K at IPC 1: 158.1 s distillation and 8.96 GB (the AVDD
paper, Kushwaha et al., TMLR 2024, cost table). Without a GPU run (no file, or a file from a CPU smoke run)
every measured cell and target reads "pending (no GPU run yet)".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GPU_JSON = "gpu.json"
SCHEMA = "mmdistill.gpu_bench"
PENDING = "pending (no GPU run yet)"
GB = 2**30  # memory in GB as PyTorch users report it: max_memory_allocated() / 2^30
AVDD_ITERATIONS = 5000  # AVDD's released iteration count, to turn s/iter into a comparable total (an assumption)

PUBLISHED: list[dict[str, Any]] = [
    {"what": "RepBlend distillation, s/iter", "published": "1.71", "ours": ("repblend", "s"), "ref": ("repblend-reference", "s")},
    {"what": "LoRS distillation, s/iter", "published": "11.5", "ours": ("lors", "s"), "ref": ("lors-reference", "s")},
    {"what": "RepBlend peak memory, GB", "published": "10.17", "ours": ("repblend", "gb"), "ref": ("repblend-reference", "gb")},
    {"what": "LoRS peak memory, GB", "published": "21.78", "ours": ("lors", "gb"), "ref": ("lors-reference", "gb")},
    {"what": "expert trajectory, projection heads (RepBlend), features computed once, min", "published": "40",
     "ours": ("heads_features_once_min", "traj"), "ref": None},
    {"what": "expert trajectory, projection heads (RepBlend), frozen encoder run every step, min", "published": "40",
     "ours": ("heads_encoder_every_step_min", "traj"), "ref": None},
    {"what": "expert trajectory (full NFNet, LoRS), min", "published": "70", "ours": ("full_min", "traj"), "ref": None},
    {"what": "MTT-VL (unrolled) peak memory, GB", "published": "71", "ours": ("mtt-vl", "gb"), "ref": None},
    {"what": "TESLA-VL peak memory, GB (20 steps)", "published": "22", "ours": ("tesla-vl-20steps", "gb"), "ref": None},
    {"what": f"AVDD VGGS-10K IPC 1, distillation s (s/iter × {AVDD_ITERATIONS})", "published": "158.1",
     "ours": ("avdd-ipc1", "total"), "ref": None},
    {"what": "AVDD VGGS-10K IPC 1, peak memory GB", "published": "8.96", "ours": ("avdd-ipc1", "gb"), "ref": None},
]


def load(bench_dir: Path) -> dict[str, Any] | None:
    """The GPU results file of ``bench_dir``, or None when there is none."""
    p = Path(bench_dir) / GPU_JSON
    if not p.is_file():
        return None
    doc = json.loads(p.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ValueError(f"{p}: not a {SCHEMA} file (field 'schema' is {doc.get('schema') if isinstance(doc, dict) else None!r})")
    return doc


def is_gpu_run(doc: dict[str, Any] | None) -> bool:
    return bool(doc) and doc.get("device", {}).get("type") == "cuda" and not doc.get("tiny")


def _rows(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in doc.get("rows", [])}


def _ok(r: dict[str, Any] | None) -> bool:
    return bool(r) and r.get("status") == "ok" and r.get("s_per_iter") is not None


def _value(doc: dict[str, Any], key: tuple[str, str] | None) -> float | None:
    if key is None:
        return None
    name, kind = key
    if kind == "traj":
        v = doc.get("expert_trajectory", {}).get(name)
        return float(v) if v is not None else None
    r = _rows(doc).get(name)
    if not _ok(r):
        return None
    if kind == "s":
        return float(r["s_per_iter"])
    if kind == "gb":
        return float(r["peak_bytes"]) / GB
    if kind == "total":
        return float(r["s_per_iter"]) * AVDD_ITERATIONS
    raise ValueError(f"unknown value kind {kind!r}")


def _cell(doc: dict[str, Any], key: tuple[str, str] | None) -> str:
    if key is None:
        return "–"
    v = _value(doc, key)
    if v is None:
        r = _rows(doc).get(key[0])
        return r.get("status", "not measured") if r else "not measured"
    return f"{v:.2f}"


def targets(doc: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(target, verdict) pairs; the verdict is PENDING without a GPU run."""
    names = ["RepBlend ≤ 0.2 × LoRS s/iter (ours, Flickr30k shapes)",
             "TESLA-VL peak memory flat from 5 to 20 steps (growth ≤ stored θ vectors + 10 %)",
             "ours ≤ 0.7 × reference s/iter, LoRS",
             "ours ≤ 0.7 × reference s/iter, RepBlend",
             "ours peak memory ≤ reference, LoRS",
             "ours peak memory ≤ reference, RepBlend",
             "every method runs at paper shapes on CUDA",
             "CPU and CUDA agree (CUDA test subset)"]
    if not is_gpu_run(doc):
        return [(n, PENDING) for n in names]
    assert doc is not None
    rows = _rows(doc)

    def ratio(a: tuple[str, str], b: tuple[str, str], limit: float) -> str:
        x, y = _value(doc, a), _value(doc, b)
        if x is None or y is None:
            missing = [k[0] for k, v in ((a, x), (b, y)) if v is None]
            return f"not measured ({', '.join(missing)})"
        return f"{'met' if x <= limit * y else 'NOT met'} ({x:.3g} / {y:.3g} = {x / y:.2f})"

    def flat() -> str:
        r5, r20 = rows.get("tesla-vl-5steps"), rows.get("tesla-vl-20steps")
        if not (_ok(r5) and _ok(r20)):
            return "not measured (tesla-vl-5steps, tesla-vl-20steps)"
        assert r5 is not None and r20 is not None
        p5, p20 = float(r5["peak_bytes"]), float(r20["peak_bytes"])
        steps = int(r20.get("shapes", {}).get("syn_steps", 20)) - int(r5.get("shapes", {}).get("syn_steps", 5))
        allowed = 0.10 * p5 + steps * 4.0 * float(r20.get("theta_numel") or 0)
        verdict = "met" if p20 - p5 <= allowed else "NOT met"
        return f"{verdict} ({p5 / GB:.2f} → {p20 / GB:.2f} GB, growth {(p20 - p5) / GB:.2f} ≤ {allowed / GB:.2f} GB allowed)" \
            if verdict == "met" else f"NOT met ({p5 / GB:.2f} → {p20 / GB:.2f} GB, growth {(p20 - p5) / GB:.2f} > {allowed / GB:.2f} GB allowed)"

    ours = [r for r in rows.values() if r.get("impl") == "mmdistill"]
    bad = [f"{r['name']}: {r.get('status')}" for r in ours if r.get("status") != "ok"]
    runs = f"met ({len(ours)} rows)" if ours and not bad else ("NOT met: " + "; ".join(bad) if bad else "not measured")
    t = doc.get("tests")
    if not t:
        agree = "not measured (no test summary)"
    elif t.get("tests", 0) and not t.get("failures") and not t.get("errors"):
        agree = f"met ({t['tests']} CUDA tests passed)"
    else:
        agree = f"NOT met ({t.get('failures', 0)} failures, {t.get('errors', 0)} errors of {t.get('tests', 0)})"
    return list(zip(names, [
        ratio(("repblend", "s"), ("lors", "s"), 0.2),
        flat(),
        ratio(("lors", "s"), ("lors-reference", "s"), 0.7),
        ratio(("repblend", "s"), ("repblend-reference", "s"), 0.7),
        ratio(("lors", "gb"), ("lors-reference", "gb"), 1.0),
        ratio(("repblend", "gb"), ("repblend-reference", "gb"), 1.0),
        runs, agree]))


def _shape_text(s: dict[str, Any]) -> str:
    keep = ("pairs", "ipc", "minibatch", "syn_steps", "batch_real", "batch_syn", "rank", "student", "gradient", "batch",
            "image_arch", "width", "factor")
    return ", ".join(f"{k} {s[k]}" for k in keep if k in s)


def render(doc: dict[str, Any] | None) -> list[str]:
    """Markdown lines of the GPU section (a pending section when ``doc`` is None or not from a GPU)."""
    out = ["## GPU: cost at the papers' shapes", "",
           "Regenerate on a GPU machine: `bash benchmarks/gpu/run.sh` (benchmarks/gpu/README.md), which writes "
           f"`benchmarks/{GPU_JSON}`. Randomly initialised networks and random data of the papers' shapes (cost does "
           "not depend on the values): image-text at Flickr30k shapes (224×224, 768-d text, 500 pairs, NFNet-l0), "
           "audio-visual at VGGS-10K shapes (224×224 frames, 1×128×56 log-mel, ConvNet width 128, factor 2). "
           "s/iter = median of the timed iterations after one warm-up; GB = 2^30 bytes of peak allocated GPU memory.", ""]
    gpu = is_gpu_run(doc)
    if not gpu:
        why = "no `benchmarks/gpu.json`" if doc is None else "`benchmarks/gpu.json` holds a CPU smoke run at tiny shapes"
        out += [f"Status: **{PENDING}** ({why}).", ""]
    else:
        assert doc is not None
        dev = doc.get("device", {})
        out += [f"Device: {dev.get('name')}; torch {doc.get('torch')}, CUDA {doc.get('cuda')}; precision "
                f"{doc.get('precision', 'fp32')}; measured {doc.get('started', '?')}.", "",
                "| row | implementation | shapes | s/iter | peak GB | status |", "|---|---|---|---|---|---|"]
        for r in doc.get("rows", []):
            s = f"{r['s_per_iter']:.3f}" if _ok(r) else "–"
            m = f"{r['peak_bytes'] / GB:.2f}" if r.get("peak_bytes") else "–"
            status = r.get("status", "?") if r.get("status") == "ok" else f"{r.get('status')}: {r.get('error', r.get('reason', ''))}"[:120]
            out.append(f"| {r['name']} | {r.get('impl', '')} | {_shape_text(r.get('shapes', {}))} | {s} | {m} | {status} |")
        traj = doc.get("expert_trajectory")
        if traj:
            out += ["", f"Expert trajectory estimate: {traj.get('epochs')} epochs × {traj.get('captions')} captions / batch "
                    f"{traj.get('batch')} = {traj.get('steps_per_trajectory')} steps; full model "
                    f"{traj.get('full_min', '–')} min; projection heads {traj.get('heads_features_once_min', '–')} min "
                    f"with features computed once (ours), {traj.get('heads_encoder_every_step_min', '–')} min running "
                    "the frozen encoder at every step."]
        out.append("")
    out += ["Published figures next to this GPU's (reference = the authors' code run by benchmarks/gpu/refdrive.py):", "",
            "| quantity | published | reference, this GPU | ours, this GPU |", "|---|---|---|---|"]
    for p in PUBLISHED:
        ref = _cell(doc, p["ref"]) if gpu else (PENDING if p["ref"] else "–")
        ours = _cell(doc, p["ours"]) if gpu else PENDING
        out.append(f"| {p['what']} | {p['published']} | {ref} | {ours} |")
    out += ["", "Published sources: RepBlend's efficiency table (RepBlend vs LoRS); CovMatch's Table 1 on one A100 (MTT-VL "
            "vs TESLA-VL); AVDD's cost table (total distillation time, compared here as s/iter × "
            f"{AVDD_ITERATIONS} iterations, an assumption). Different GPUs: the ratios, not the absolute values, are "
            "comparable.", "", "| target | verdict |", "|---|---|"]
    out += [f"| {n} | {v} |" for n, v in targets(doc)]
    out.append("")
    return out


def section(bench_dir: Path) -> list[str]:
    """The section for ``bench_dir`` (reads ``gpu.json`` when present)."""
    return render(load(bench_dir))
