"""Render BENCHMARKS.md and one wide CSV per suite from ``benchmarks/*.json`` (never edit either by hand).

Per dataset, and per suite that measured it (one evaluation protocol per table): a headline pivot (methods in a
fixed order, budgets as columns, the main metric with % of full data and distillation time), a
cross-architecture table, a cost table, short ablation tables and the suite's targets
(``targets:`` of ``benchmarks/suites/<suite>.yaml``, :mod:`mmdistill.bench.targets`).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..config import load_yaml
from ..io import atomic_write_text
from .targets import Rows, check_target, why_missed_text
from .gpu_section import GPU_JSON, section as gpu_section

SUITE_ORDER = ["quick", "av", "vl", "kd"]
# headline rows, in this order; every other row of a suite is an ablation/control of the longest prefix here
METHOD_ORDER = ["random", "herding", "k-center", "forgetting", "dm", "avdd", "dm-avdd-lr", "davdd", "mtt-vl", "tesla-vl",
                "lors", "repblend", "mdm", "covmatch", "raha", "full"]
KD_ORDER = ["no-kd", "kd", "dkd", "dist", "fitnet", "pkd", "c2kd", "fd-cmkd"]
AV_RETRIEVAL_METRIC = "avr_r_mean"  # audio-visual retrieval of audio-visual sets: mean of a2i/i2a R@1/5/10
MAIN_METRIC = {"classification": "fused_acc", "retrieval": "r_mean", "kd": "student_acc"}
ARCH_ORDER = ["convnet", "lenet", "alexnet", "vgg11", "resnet18"]
PROTOCOL_KEYS = ["arch", "epochs", "batch_size", "optimizer", "lr", "lr_schedule", "augment", "trained_modules",
                 "lr_source", "fusion", "selection", "split"]
CSV_ID = ["suite", "dataset", "method", "budget", "budget_unit", "eval_arch", "teacher_modality", "student_modality",
          "syn_steps", "n_sets", "n_seeds"]


def _num(m: float, s: float | None, n: int | None, digits: int = 2) -> str:
    """``m ± s`` (plain ``m`` when a single evaluation: no spread to show)."""
    if not n or n <= 1 or s is None:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _size(r: dict[str, Any]) -> str:
    """(sets × evaluation seeds per set), or (n seeds) for rows without distilled sets."""
    n, k = r.get("n_seeds") or 0, r.get("n_sets")
    if not k:
        return f"({n})"
    return f"({k}×{max(1, n // k)})"


def _task(rows: list[dict[str, Any]]) -> str:
    metrics = {r["metric"] for r in rows}
    if "student_acc" in metrics:
        return "kd"
    return "retrieval" if "r_mean" in metrics else "classification"


def _order(methods: set[str], order: list[str]) -> list[str]:
    return [m for m in order if m in methods]


def _family(label: str, order: list[str]) -> str | None:
    hits = [m for m in order if label == m or label.startswith(m + "-") or label.startswith(m + "@")]
    return max(hits, key=len) if hits else None


def _protocol(rows: list[dict[str, Any]]) -> str:
    rows = [r for r in rows if not str(r["method"]).startswith("full-")] or rows  # controls state their own data
    p = next((r["protocol"] for r in rows if r.get("protocol")), {})
    parts = [f"{k}={p[k]}" for k in PROTOCOL_KEYS if k in p and not isinstance(p[k], (dict, list))]
    data = next((r.get("data_params") for r in rows if r.get("data_params")), None)
    if data:
        parts.append("data=" + ",".join(f"{k}:{v}" for k, v in sorted(data.items())))
    return "; ".join(parts) + "; test split, last epoch" if parts else "test split, last epoch"


def _of_metric(rows: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """The rows of ``metric`` when one of them carries a protocol (e.g. audio-visual retrieval), else all rows."""
    own = [r for r in rows if r["metric"] == metric]
    return own if any(r.get("protocol") for r in own) else rows


def _split_protocols(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by evaluation protocol: "" = the common one; ``<method>@<protocol>`` rows under "<protocol>", with the
    suffix removed so that each protocol's table reads like the headline (one protocol per table)."""
    out: dict[str, list[dict[str, Any]]] = {"": []}
    for r in rows:
        method, _, proto = str(r["method"]).partition("@")
        if proto and r.get("suite") != "kd":
            out.setdefault(proto, []).append({**r, "method": method})
        else:
            out[""].append(r)
    return out


def _split_kd_protocols(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """KD rows by training protocol: "" = common; ``<method>@<protocol>`` rows of a KD protocol (the run's
    ``protocol`` field, e.g. ``paper``) under its name with the suffix removed. Other suffixes (``@gap-head``: a
    student variant, same protocol) stay with the common rows."""
    from ..kd.protocol import KD_PROTOCOLS

    out: dict[str, list[dict[str, Any]]] = {"": []}
    for r in rows:
        method, _, proto = str(r["method"]).rpartition("@")
        if method and proto in KD_PROTOCOLS and proto != "common":
            out.setdefault(proto, []).append({**r, "method": method})
        else:
            out[""].append(r)
    return out


def _is_reference(method: str) -> bool:
    """Full-data rows (``full`` and its controls such as ``full-shuffled-within-class``) have no budget column."""
    return method == "full" or method.startswith("full-")


def _budgets(rows: list[dict[str, Any]], metric: str) -> list[tuple[Any, str]]:
    seen: list[tuple[Any, str]] = []
    for r in sorted((r for r in rows if not _is_reference(str(r["method"])) and r["metric"] == metric and isinstance(r.get("budget"), int)),
                    key=lambda r: r["budget"]):
        b = (r["budget"], r["budget_unit"])
        if b not in seen:
            seen.append(b)
    return seen


def _regen(suite: str, only: str | None = None) -> str:
    cmd = f"mmdistill bench --suite {suite}" + (f" --only {only}" if only else "")
    return f"Regenerate: `{cmd}`."


# ------------------------------------------------------------------------------------------ distillation suites


def _headline(suite: str, ds: str, rows: Rows, metric: str) -> list[str]:
    budgets = _budgets(rows.rows, metric)
    main = [r for r in rows.rows if r.get("syn_steps") is None]
    methods = _order({r["method"] for r in main}, METHOD_ORDER)
    full = rows.get(method="full", metric=metric, arch="convnet")
    out = [f"**{metric}** (mean ± std (sets × evaluation seeds per set) · % of full data · distillation wall s per set); "
           f"ConvNet evaluation, protocol: {_protocol(_of_metric(rows.filter(arch='convnet'), metric))}.", "",
           "| method | " + " | ".join(f"{b} {u}" for b, u in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
    for m in methods:
        if m == "full":
            if full is None:
                continue
            cells = [f"{_num(full['mean'], full['std'], full['n_seeds'])} {_size(full)} · 100 %"] + [""] * (len(budgets) - 1)
            out.append(f"| full ({full['budget']} {full['budget_unit']}) | " + " | ".join(cells) + " |")
            for ctrl in sorted(x for x in {r["method"] for r in main} if str(x).startswith("full-")):
                c = rows.get(method=ctrl, metric=metric, arch="convnet")
                if c is not None:
                    pct = f" · {100 * c['mean'] / full['mean']:.0f} %" if full["mean"] else ""
                    cells = [f"{_num(c['mean'], c['std'], c['n_seeds'])} {_size(c)}{pct}"] + [""] * (len(budgets) - 1)
                    out.append(f"| {ctrl} ({c['budget']} {c['budget_unit']}, control) | " + " | ".join(cells) + " |")
            continue
        cells = []
        for b, u in budgets:
            r = rows.get(method=m, metric=metric, budget=b, arch="convnet", syn_steps=None)
            if r is None:
                cells.append("–")
                continue
            txt = f"{_num(r['mean'], r['std'], r['n_seeds'])} {_size(r)}"
            if full and full["mean"]:
                txt += f" · {100 * r['mean'] / full['mean']:.0f} %"
            t = rows.get(method=m, metric="distill_wall_s", budget=b, arch="convnet", syn_steps=None)
            if t is not None:
                txt += f" · {t['mean']:.1f} s" if t["mean"] < 10 else f" · {t['mean']:.0f} s"
            cells.append(txt)
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return out + ["", _regen(suite)]


def _cross_arch(suite: str, rows: Rows, metric: str) -> list[str]:
    archs = _order({r["eval_arch"] for r in rows.rows}, ARCH_ORDER)
    if len(archs) < 2:
        return []
    out = [f"Cross-architecture ({metric}, the same sets evaluated by fresh nets of each architecture; mean ± std):", "",
           "| method | budget | " + " | ".join(archs) + " |", "|---|---" + "|---" * len(archs) + "|"]
    budgets = [(None, None)] + _budgets(rows.rows, metric)
    for m in _order({r["method"] for r in rows.rows}, METHOD_ORDER):
        for b, u in budgets:
            got = [rows.get(method=m, metric=metric, budget=b, arch=a) if m != "full" else rows.get(method=m, metric=metric, arch=a)
                   for a in archs]
            if (m == "full") != (b is None) or sum(g is not None for g in got) < 2:
                continue
            label = "all" if b is None else f"{b} {u}"
            out.append(f"| {m} | {label} | " + " | ".join("–" if g is None else _num(g["mean"], g["std"], g["n_seeds"])
                                                          for g in got) + " |")
    return out + ["", _regen(suite)]


def _target_methods(targets: list[dict[str, Any]]) -> set[str]:
    out: set[str] = set()
    for t in targets:
        for k in ("num", "den", "a", "b", "select"):
            if isinstance(t.get(k), dict) and "method" in t[k]:
                out.add(t[k]["method"])
    return out


def _cost(suite: str, rows: Rows, targets: list[dict[str, Any]]) -> list[str]:
    keep = set(METHOD_ORDER) | _target_methods(targets)
    main = [r for r in rows.rows if r["eval_arch"] == "convnet" and r["metric"] in ("distill_wall_s", "s_per_iter")
            and (r["method"] in keep or r.get("syn_steps") is not None)]
    keys: list[tuple[str, Any, Any]] = []
    for r in main:
        k = (r["method"], r["budget"], r.get("syn_steps"))
        if k not in keys:
            keys.append(k)
    if not keys:
        return []
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    keys.sort(key=lambda k: (order.get(_family(k[0], METHOD_ORDER) or "", 99), k[0], k[1], k[2] or 0))
    out = ["Cost per distilled set (ConvNet cells; headline methods, memory cells and the rows the targets read; wall "
           "time depends on the machine's load, CPU time less so; peak RSS of the cell's whole process):", "",
           "| method | budget | s/iter | CPU s/iter | distill wall s | distill CPU s | peak RSS MB |", "|---|---|---|---|---|---|---|"]
    for m, b, steps in keys:
        sel = dict(method=m, budget=b, arch="convnet", syn_steps=steps)

        def v(metric: str, digits: int = 1, sel: dict[str, Any] = sel) -> str:
            r = rows.get(metric=metric, **sel)
            return "–" if r is None else f"{r['mean']:.{digits}f}"
        unit = next((r["budget_unit"] for r in main if r["method"] == m and r["budget"] == b), "")
        name = m + (f" (syn_steps {steps})" if steps is not None else "")
        out.append(f"| {name} | {b} {unit} | {v('s_per_iter', 3)} | {v('cpu_s_per_iter', 3)} | {v('distill_wall_s')} | "
                   f"{v('distill_cpu_s')} | {v('peak_rss_mb', 0)} |")
    out += _expert_cost(rows)
    extra = sorted({r["method"] for r in rows.rows if r["metric"].startswith("bank_")})
    for m in extra:
        bits = [f"{k} {r['mean']:.0f}" for k in ("bank_encoders_cpu_s", "bank_decouplers_cpu_s", "bank_total_cpu_s",
                                                 "bank_total_wall_s") if (r := rows.get(method=m, metric=k)) is not None]
        out += ["", f"One-off `{m}` (trained once, shared by every cell that reads it): " + ", ".join(bits) + " s."]
    return out + ["", _regen(suite)]


def _expert_cost(rows: Rows) -> list[str]:
    """One line per distinct expert buffer the suite's cells read (rows ``experts_*``)."""
    bufs: dict[tuple[float, ...], list[str]] = {}
    for r in rows.rows:
        if r["metric"] != "experts_wall_s_per_trajectory" or r["eval_arch"] != "convnet":
            continue
        got = {k: rows.get(method=r["method"], budget=r["budget"], arch="convnet", metric=k)
               for k in ("experts_n", "experts_mb_per_trajectory", "experts_final_loss", "experts_chance_loss")}
        key = (r["mean"], *(g["mean"] if g else float("nan") for g in got.values()))
        bufs.setdefault(key, [])
        if r["method"] not in bufs[key]:
            bufs[key].append(r["method"])
    out = []
    for (wall, n, mb, loss, chance), ms in bufs.items():
        out += ["", f"Expert buffer read by {', '.join(f'`{m}`' for m in ms)} (trained once per suite, before the cells' "
                f"clocks start): {n:.0f} trajectories, {wall:.1f} s wall and {mb:.2f} MB each; last-step training "
                f"InfoNCE {loss:.2f} (chance: ln batch = {chance:.2f})."]
    return out


def _ablations(suite: str, rows: Rows, metric: str) -> list[str]:
    labels = {r["method"] for r in rows.rows if r["method"] not in METHOD_ORDER and r.get("syn_steps") is None
              and r["metric"] == metric and not _is_reference(str(r["method"]))}  # full-data controls sit in the headline
    fams: dict[str, list[str]] = {}
    for lab in sorted(labels):
        fams.setdefault(_family(lab, METHOD_ORDER) or "controls", []).append(lab)
    out: list[str] = []
    for fam in _order(set(fams), METHOD_ORDER) + (["controls"] if "controls" in fams else []):
        variants = fams[fam]
        budgets = [b for b in _budgets(rows.rows, metric)
                   if any(rows.get(method=v, metric=metric, budget=b[0], arch="convnet") for v in variants)]
        base = [fam] if fam in METHOD_ORDER else []
        out += [f"Ablations and controls of `{fam}` ({metric}, ConvNet, mean ± std (sets × evaluation seeds per set)):"
                if base else f"Controls ({metric}, ConvNet):", "",
                "| variant | " + " | ".join(f"{b} {u}" for b, u in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]
        for v in base + variants:
            cells = []
            for b, _ in budgets:
                r = rows.get(method=v, metric=metric, budget=b, arch="convnet", syn_steps=None)
                cells.append("–" if r is None else f"{_num(r['mean'], r['std'], r['n_seeds'])} {_size(r)}")
            out.append(f"| {v} | " + " | ".join(cells) + " |")
        ds = rows.rows[0]["dataset"]
        only = f"{ds}/{fam}-" if base else " --only ".join(f"{ds}/{v}/" for v in variants)
        out += ["", _regen(suite, only), ""]
    return out


# ------------------------------------------------------------------------------------------ KD suite

def _direction(r: dict[str, Any]) -> str:
    return f"{r.get('teacher_modality', '?')} → {r.get('student_modality', '?')}"


def _kd_tables(suite: str, rows: Rows, only: str | None = None) -> list[str]:
    dirs: list[str] = []
    for r in rows.rows:
        if _direction(r) not in dirs:
            dirs.append(_direction(r))
    acc = [r for r in rows.rows if r["metric"] == "student_acc"]
    main = [r for r in acc if r["eval_arch"] == "convnet"]
    out = [f"**student_acc** (the student's own head, last epoch; mean ± std over seeds; Δ vs the no-KD student of the "
           f"same direction); protocol: {_protocol(main)}.", "",
           "| method | " + " | ".join(dirs) + " |", "|---" * (len(dirs) + 1) + "|"]

    def get(method: str, d: str, metric: str = "student_acc", arch: str = "convnet") -> dict[str, Any] | None:
        return next((r for r in rows.rows if r["method"] == method and _direction(r) == d and r["metric"] == metric
                     and r["eval_arch"] == arch), None)
    teach = [get(m, d, "teacher_acc") for d in dirs for m in ("no-kd",)]
    out.append("| teacher (teacher modality) | " + " | ".join("–" if t is None else _num(t["mean"], t["std"], t["n_seeds"])
                                                             for t in teach) + " |")
    methods = _order({r["method"] for r in main}, KD_ORDER)
    methods += sorted({r["method"] for r in main} - set(methods))
    for m in methods:
        cells = []
        for d in dirs:
            r, base = get(m, d), get("no-kd", d)
            if r is None:
                cells.append("–")
                continue
            txt = _num(r["mean"], r["std"], r["n_seeds"])
            if base is not None and m != "no-kd":
                txt += f" ({r['mean'] - base['mean']:+.2f})"
            cells.append(txt)
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    out += ["", _regen(suite, only)]
    gap = [r for r in acc if r["eval_arch"] != "convnet"]
    if gap:
        arch = gap[0]["eval_arch"]
        gdirs = [d for d in dirs if any(_direction(r) == d for r in gap)]
        out += ["", f"Student with a globally pooled classifier (`{arch}`; Δ vs its own no-KD student):", "",
                "| method | " + " | ".join(gdirs) + " |", "|---" * (len(gdirs) + 1) + "|"]
        for m in sorted({r["method"] for r in gap}, key=lambda x: (not x.startswith("no-kd"), x)):
            cells = []
            for d in gdirs:
                r = get(m, d, arch=arch)
                base = next((get(b, d, arch=arch) for b in {x["method"] for x in gap} if b.startswith("no-kd")), None)
                cells.append("–" if r is None else _num(r["mean"], r["std"], r["n_seeds"])
                             + (f" ({r['mean'] - base['mean']:+.2f})" if base is not None and r is not base else ""))
            out.append(f"| {m} | " + " | ".join(cells) + " |")
        out += ["", _regen(suite, "@gap-head")]
    sim = [r for r in rows.rows if r["method"] == "similarity"]
    if sim:
        sdirs = [d for d in dirs if any(_direction(r) == d for r in sim)]
        qs = [("cos_raw", "raw"), ("cos_low_dc", "low band incl. DC"), ("cos_high", "high band"),
              ("cos_low", "low band, DC excluded"), ("cos_low_perm", "low band, channels permuted"),
              ("cos_high_perm", "high band, channels permuted")]
        out += ["", "Control: paired cosine between the two modalities' unimodal nets on test pairs (real features), "
                "next to independent random vectors with each side's channel mean and std (random):", "",
                "| quantity | " + " | ".join(f"{d} real | {d} random" for d in sdirs) + " |",
                "|---" * (2 * len(sdirs) + 1) + "|"]
        for k, lab in qs:
            cells = []
            for d in sdirs:
                for key in (k, "rand_" + k):
                    r = get("similarity", d, key)
                    cells.append("–" if r is None else _num(r["mean"], r["std"], r["n_seeds"], 3))
            out.append(f"| {lab} | " + " | ".join(cells) + " |")
        out += ["", _regen(suite, "similarity")]
    return out


# ------------------------------------------------------------------------------------------ page


def _targets(suite: str, ds: str | None, targets: list[dict[str, Any]], rows: Rows) -> list[str]:
    mine = [t for t in targets if t.get("dataset") == ds]
    if not mine:
        return []
    checked = [(t, *check_target(t, rows)) for t in mine]
    why = any(ok is False and t.get("why_missed") for t, _, ok in checked)
    out = ["Targets:", "", "| target | value | met/missed |" + (" why missed |" if why else ""),
           "|---|---|---|" + ("---|" if why else "")]
    for t, value, ok in checked:
        line = f"| {t['name']} | {value} | {'–' if ok is None else ('met' if ok else 'missed')} |"
        if why:  # the control experiment that explains a miss, stated in the suite file next to the target
            line += f" {why_missed_text(t, rows) if ok is False else ''} |"
        out.append(line)
    return out + ["", _regen(suite)]


def _suite_spec(suites_dir: Path | None, suite: str) -> dict[str, Any]:
    if suites_dir is None or not (Path(suites_dir) / f"{suite}.yaml").is_file():
        return {}
    return load_yaml(Path(suites_dir) / f"{suite}.yaml")


def _suite_costs(order: list[str], suites: dict[str, list[dict[str, Any]]]) -> list[str]:
    """How long each suite takes: the measured cells' wall time summed (each cell is one process)."""
    out = ["How long each suite takes (sum over its measured cells of the cell's wall time: distillation or selection, "
           "expert/bank training not cached before, and every evaluation; one process per cell, thread count as "
           "recorded in the rows; a 2-core box runs two cells at a time):", "",
           "| suite | cells measured | total cell wall h | CPU h | threads per cell |", "|---|---|---|---|---|"]
    for s in order:
        cells: dict[str, dict[str, Any]] = {}
        for r in suites[s]:
            cells.setdefault(str(r.get("cell")), r)
        wall = sum(float(r.get("wall_s") or 0) for r in cells.values())
        cpu = [float(r["cpu_s"]) for r in cells.values() if r.get("cpu_s") is not None]
        threads = sorted({str(r.get("threads")) for r in cells.values() if r.get("threads") is not None})
        cpu_txt = f"{sum(cpu) / 3600:.1f}" + ("" if len(cpu) == len(cells) else f" ({len(cpu)} cells)")
        out.append(f"| `{s}` | {len(cells)} | {wall / 3600:.1f} | {cpu_txt if cpu else '–'} | {', '.join(threads) or '–'} |")
    return out + [""]


def render_markdown(suites: dict[str, list[dict[str, Any]]], specs: dict[str, dict[str, Any]] | None = None) -> str:
    """BENCHMARKS.md text from ``{suite: rows}``."""
    specs = specs or {}
    order = [s for s in SUITE_ORDER if s in suites] + sorted(set(suites) - set(SUITE_ORDER))
    datasets: list[str] = []
    for s in order:
        for r in suites[s]:
            if r["dataset"] not in datasets:
                datasets.append(r["dataset"])
    lines = ["# Benchmarks", "",
             "Generated by `mmdistill bench` from `benchmarks/*.json` (re-render with `mmdistill bench --render-only`; "
             "never edit by hand). Every number is a fresh model trained on the selected or distilled set and tested "
             "on the dataset's test split at the last epoch. A cell reads mean ± std over (sets × evaluation seeds per "
             "set); a single evaluation shows no ±. Per-cell rows, protocols and commands: `benchmarks/<suite>.json`; "
             "one row per method × budget × architecture: `benchmarks/<suite>.csv`. Suite definitions: "
             "`benchmarks/suites/<suite>.yaml`; studies behind the configs: `benchmarks/studies/`.", ""]
    lines += ["Contents: " + ", ".join(f"[{d}](#{d.replace(' ', '-')})" for d in datasets), ""]
    lines += _suite_costs(order, suites)
    for ds in datasets:
        lines += [f"## {ds}", ""]
        for s in order:
            drows = [r for r in suites[s] if r["dataset"] == ds]
            if not drows:
                continue
            rows = Rows(drows)
            task = _task(drows)
            lines += [f"### {ds} · suite `{s}`", ""]
            if task == "kd":
                by_proto = _split_kd_protocols(drows)
                lines += _kd_tables(s, Rows(by_proto.pop(""))) + [""]
                for name, prows in by_proto.items():
                    lines += [f"The same directions under the `{name}` training protocol (`protocol: {name}` of the KD "
                              "run: the cross-modal KD papers' recipe for teacher and student, last epoch):", ""]
                    lines += _kd_tables(s, Rows(prows), only=f"@{name}") + [""]
            else:
                metric = MAIN_METRIC[task]
                by_proto = _split_protocols(drows)
                rows = Rows(by_proto.pop(""))
                lines += _headline(s, ds, rows, metric) + [""]
                if rows.get(metric=AV_RETRIEVAL_METRIC, arch="convnet") is not None:
                    lines += _headline(s, ds, rows, AV_RETRIEVAL_METRIC) + [""]
                for name, prows in by_proto.items():
                    lines += [f"The same sets under the `{name}` evaluation protocol (`eval.protocol: {name}`; "
                              "the method's own paper's evaluation learner, last epoch):", ""]
                    lines += _headline(s, ds, Rows(prows), metric) + [""]
                targets = specs.get(s, {}).get("targets") or []
                for part in (_cross_arch(s, rows, metric), _cost(s, rows, targets), _ablations(s, rows, metric)):
                    lines += (part + [""]) if part else []
            lines += (_targets(s, ds, specs.get(s, {}).get("targets") or [], Rows(suites[s])) or [])
            lines.append("")
    across = [(s, t) for s in order for t in specs.get(s, {}).get("targets") or [] if t.get("dataset") is None]
    if across:
        lines += ["## Targets across datasets", ""]
        for s in order:
            part = _targets(s, None, specs.get(s, {}).get("targets") or [], Rows(suites[s]))
            if part:
                lines += [f"Suite `{s}`:", ""] + part + [""]
    text = "\n".join(lines).rstrip() + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def suite_csv(rows: list[dict[str, Any]]) -> str:
    """One row per method × budget × architecture (× syn_steps / KD direction), one column pair per metric."""
    metrics: list[str] = []
    table: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        if r["metric"] not in metrics:
            metrics.append(r["metric"])
        key = tuple(r.get(k) for k in CSV_ID[:9])
        row = table.setdefault(key, {k: r.get(k) for k in CSV_ID})
        row[f"{r['metric']}_mean"] = r["mean"]
        row[f"{r['metric']}_std"] = r["std"]
    cols = CSV_ID + [f"{m}_{s}" for m in metrics for s in ("mean", "std")]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for row in table.values():
        w.writerow({k: ("" if row.get(k) is None else row[k]) for k in cols})
    return buf.getvalue()


def render(bench_dir: Path, md_path: Path, suites_dir: Path | None = None) -> Path:
    """Write ``md_path`` and ``<bench_dir>/<suite>.csv`` from ``<bench_dir>/*.json`` (targets from ``suites_dir``)."""
    suites: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(bench_dir).glob("*.json")):
        if path.name == GPU_JSON:  # device rows, not a suite: rendered by gpu_section
            continue
        rows = json.loads(path.read_text(encoding="utf-8"))
        if rows:
            suites[path.stem] = rows
            atomic_write_text(path.with_suffix(".csv"), suite_csv(rows))
    specs = {s: _suite_spec(suites_dir, s) for s in suites}
    md = render_markdown(suites, specs).rstrip() + "\n\n" + "\n".join(gpu_section(Path(bench_dir))).rstrip() + "\n"
    atomic_write_text(md_path, md)
    return md_path
