"""``compare_runs(run_dirs)``: a metric against budget for several runs, as a figure and a table.

The budget axis is the stored size in *pair-equivalents* (stored floats / floats of one real pair, from
``manifest.json``), so factorised sets, soft labels and similarity factors are charged honestly; runs
without a manifest fall back to the requested budget. One line per (method, dataset), error bars are the
std over evaluation seeds, and each run's own same-size random subset (from its results file) is drawn dashed;
when all runs share one budget the figure is a bar chart instead. Runs of one dataset with different data
parameters are flagged (the same pair-equivalents then count different inputs). A
directory written by ``mmdistill evaluate --real`` (method ``full``) is drawn as a dotted horizontal line.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from ..errors import MMDistillError
from ..evaluate.results import set_mismatch
from ..io import atomic_write_text
from ..runs import results_name
from . import figures as F
from .html import Section, fmt, img_tag, note, page, table, write_page
from .load import check_run_dir

METRIC_PREFERENCE = ("fused_acc", "r_mean")
FULL = "full"  # method name of `mmdistill evaluate --real` results


@dataclass
class Row:
    """One run's point: budget and metric (None when the run has no usable results)."""

    run: str
    method: str
    dataset: str
    requested: str
    budget: float | None
    mean: float | None
    std: float | None
    base_mean: float | None
    base_std: float | None
    problem: str | None = None
    data: dict[str, Any] | None = None  # the dataset parameters the run used (None: unknown)


def _read_json(p: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return d if isinstance(d, dict) else None


def pick_metric(results: Sequence[dict[str, Any]], metric: str | None) -> str:
    """The requested metric, else fused_acc / r_mean when some run has it, else the first metric seen."""
    if metric:
        return metric
    names = [m for r in results for m in (r.get("metrics") or {})]
    for pref in METRIC_PREFERENCE:
        if pref in names:
            return pref
    if names:
        return names[0]
    raise MMDistillError("none of the runs has results with metrics; run `mmdistill evaluate RUN_DIR` first")


def collect(run_dirs: Sequence[str | Path], metric: str | None = None, arch: str | None = None) -> tuple[str, list[Row]]:
    """(metric, one Row per run, in the given order)."""
    dirs = [check_run_dir(d) for d in run_dirs]
    fname = results_name(arch)
    results = {d: _read_json(d / fname) for d in dirs}
    metric = pick_metric([r for r in results.values() if r], metric)
    rows = []
    for d in dirs:
        res = results[d]
        man = _read_json(d / "manifest.json") or {}
        meta = man.get("meta") or {}
        req = meta.get("budget") or (res or {}).get("budget") or {}
        requested = f"{req.get('value')} {req.get('unit')}" if req else "?"
        budget = (man.get("budget") or {}).get("pair_equivalents")
        if budget is None and isinstance(req.get("value"), (int, float)):
            budget = float(req["value"])
        method = str(meta.get("method") or (res or {}).get("method") or "?")
        dataset = str(meta.get("dataset") or (res or {}).get("dataset") or "?")
        row = Row(str(d), method, dataset, requested, budget, None, None, None, None, data=_data_params(d, meta, res))
        m = ((res or {}).get("metrics") or {}).get(metric)
        why = set_mismatch(d, res, fname) if res is not None else None
        if why:
            raise MMDistillError(f"{d}: {why}")
        if res is None:
            row.problem = f"{fname} missing or unreadable"
        elif not isinstance(m, dict) or "mean" not in m:
            row.problem = f"{fname} has no metric {metric!r}"
        else:
            row.mean, row.std = float(m["mean"]), float(m.get("std", 0.0))
            b = (((res.get("random_subset_same_size") or {}).get("metrics")) or {}).get(metric)
            if isinstance(b, dict) and "mean" in b:
                row.base_mean, row.base_std = float(b["mean"]), float(b.get("std", 0.0))
        if row.budget is None and row.problem is None and method != FULL:
            row.problem = "no budget recorded (manifest.json and results budget missing)"
        rows.append(row)
    if not any(r.mean is not None for r in rows):
        raise MMDistillError(f"no run has metric {metric!r} in {fname}: " + "; ".join(f"{r.run}: {r.problem}" for r in rows))
    return metric, rows


def _data_params(d: Path, meta: dict[str, Any], res: dict[str, Any] | None) -> dict[str, Any] | None:
    cfg = d / "config.yaml"
    if cfg.is_file():
        try:
            c = yaml.safe_load(cfg.read_text(encoding="utf-8"))
            if isinstance(c, dict) and isinstance(c.get("data"), dict):
                return dict(c["data"])
        except yaml.YAMLError:
            pass
    if isinstance(meta.get("dataset_params"), dict):
        return dict(meta["dataset_params"])
    return None


def data_param_warnings(rows: Sequence[Row]) -> list[str]:
    """One warning per dataset whose runs used different data parameters (e.g. 32x32 vs 64x64 log-mels): their
    budgets count the same pair-equivalents over different inputs, so the points are not comparable."""
    out = []
    for dataset in sorted({r.dataset for r in rows}):
        seen: dict[str, list[str]] = {}
        for r in rows:
            if r.dataset == dataset and r.data is not None:
                seen.setdefault(json.dumps(r.data, sort_keys=True), []).append(r.run)
        if len(seen) > 1:
            out.append(f"runs on {dataset} differ in data parameters: "
                       + "; ".join(f"{k} ({', '.join(v)})" for k, v in seen.items())
                       + " - their scores are measured on different inputs")
    return out


def _single_budget(ok: Sequence[Row]) -> bool:
    return len({r.budget for r in ok}) == 1


def plot(rows: Sequence[Row], metric: str) -> bytes:
    """Metric against budget: one line per (method, dataset) with its runs' own same-size random subsets dashed;
    when every run has the same budget, a bar chart (method and its random subset side by side)."""
    fig = F.new_figure(6.4, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    ok = [r for r in rows if r.mean is not None and r.budget is not None and r.method != FULL]
    if ok and _single_budget(ok):
        _bars(ax, ok, rows, metric)
        return F.png_bytes(fig)
    for r in rows:  # `mmdistill evaluate --real` results: the full-data upper bound, a horizontal line
        if r.method == FULL and r.mean is not None:
            ax.axhline(r.mean, color="black", linestyle=":", linewidth=1.2, label=f"full training set ({r.dataset})")
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in ok:
        groups.setdefault((r.method, r.dataset), []).append(r)
    for (method, dataset), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r.budget)  # type: ignore[arg-type, return-value]
        ax.errorbar([r.budget for r in rs], [r.mean for r in rs], yerr=[r.std or 0.0 for r in rs], marker="o",
                    capsize=3, label=f"{method} ({dataset})")
    for (method, dataset), rs in sorted(groups.items()):  # each run's own random subset (same draw protocol)
        rs = sorted((r for r in rs if r.base_mean is not None), key=lambda r: r.budget)  # type: ignore[arg-type, return-value]
        if rs:
            ax.plot([r.budget for r in rs], [r.base_mean for r in rs], "--", color="gray", marker="x",
                    label=f"random subset, same size as {method} ({dataset})")
    xs = [r.budget for r in ok]
    if xs and min(xs) > 0 and max(xs) / min(xs) > 10:  # type: ignore[operator]
        ax.set_xscale("log")
    ax.set_xlabel("budget (pair-equivalents)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return F.png_bytes(fig)


def _bars(ax: Any, ok: Sequence[Row], rows: Sequence[Row], metric: str) -> None:
    x = np.arange(len(ok))
    w = 0.38
    ax.bar(x - w / 2, [r.mean for r in ok], w, yerr=[r.std or 0.0 for r in ok], capsize=3, label="set")
    ax.bar(x + w / 2, [r.base_mean if r.base_mean is not None else np.nan for r in ok], w,
           yerr=[r.base_std or 0.0 for r in ok], capsize=3, color="lightgray", hatch="//",
           label="random subset, same size")
    for r in rows:
        if r.method == FULL and r.mean is not None:
            ax.axhline(r.mean, color="black", linestyle=":", linewidth=1.2, label=f"full training set ({r.dataset})")
    ax.set_xticks(x, [f"{r.method}\n{Path(r.run).name}" for r in ok], fontsize=7)
    ax.set_xlabel(f"budget {fmt(ok[0].budget)} pair-equivalents")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


HEADER = ["run", "method", "dataset", "requested budget", "pair-equivalents", "mean", "std", "random subset mean",
          "random subset std", "note"]


def table_rows(rows: Sequence[Row]) -> list[list[Any]]:
    return [[r.run, r.method, r.dataset, r.requested, r.budget, r.mean, r.std, r.base_mean, r.base_std, r.problem or ""]
            for r in rows]


def to_csv(rows: Sequence[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for r in table_rows(rows):
        w.writerow(["" if v is None else v for v in r])
    return buf.getvalue()


def to_markdown(rows: Sequence[Row], metric: str) -> str:
    lines = [f"| run | method | dataset | pair-eq. | {metric} | random subset |", "|---|---|---|---:|---:|---:|"]
    for r in rows:
        val = f"{r.mean:.2f} ± {r.std:.2f}" if r.mean is not None else (r.problem or "-")
        base = f"{r.base_mean:.2f} ± {r.base_std:.2f}" if r.base_mean is not None else "-"
        lines.append(f"| {r.run} | {r.method} | {r.dataset} | {fmt(r.budget)} | {val} | {base} |")
    return "\n".join(lines)


def compare_runs(run_dirs: Sequence[str | Path], out: str | Path = "compare.html", *, metric: str | None = None,
                 arch: str | None = None) -> tuple[Path, str, list[Row]]:
    """Write ``out`` (HTML with the figure and table) and ``out`` with suffix ``.csv``; both atomically."""
    if not run_dirs:
        raise MMDistillError("compare needs at least one RUN_DIR")
    metric, rows = collect(run_dirs, metric, arch)
    warnings = data_param_warnings(rows)
    for w in warnings:
        print(f"mmdistill compare: warning: {w}", file=sys.stderr)
    ok = [r for r in rows if r.mean is not None and r.budget is not None and r.method != FULL]
    kind = ("Bar chart: every run has the same budget; each run next to its own same-size random subset. "
            if ok and _single_budget(ok) else "")
    fig = Section("compare-plot", f"{metric} against budget",
                  note(kind + "Error bars: std over evaluation seeds. Budget: stored floats / floats of one real pair.")
                  + img_tag(plot(rows, metric), f"{metric} against budget"))
    problems = "".join(note(f"{r.run}: {r.problem}", "warn") for r in rows if r.problem)
    problems += "".join(note(w, "warn") for w in warnings)
    tab = Section("compare-table", "Runs", table(HEADER, table_rows(rows),
                                                 numeric=[False] * 4 + [True] * 5 + [False]) + problems)
    out = Path(out)
    try:
        _write(out, metric, arch, rows, fig, tab)
    except OSError as e:
        raise MMDistillError(f"{out}: cannot write the comparison ({e}); choose another --out") from None
    return out, metric, rows


def _write(out: Path, metric: str, arch: str | None, rows: Sequence[Row], fig: Section, tab: Section) -> None:
    write_page(out, page(f"mmdistill compare: {metric} against budget", f"{len(rows)} runs, results file "
                         f"{results_name(arch)}", [fig, tab]))
    atomic_write_text(out.with_suffix(".csv"), to_csv(rows))
