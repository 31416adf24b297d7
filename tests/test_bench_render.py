"""BENCHMARKS.md and benchmarks/<suite>.csv are exactly the render of the committed benchmarks/*.json, and the
page has the structure a reader needs: per dataset a headline pivot first, one protocol per table, fixed method
order, no ± for single evaluations, one full-data number per dataset and protocol, no internal notes."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from mmdistill.bench.render import METHOD_ORDER, render, render_markdown, suite_csv

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _suites() -> dict[str, list[dict]]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(BENCH.glob("*.json"))}


def test_committed_page_and_csvs_equal_the_render(tmp_path):
    bdir = tmp_path / "benchmarks"
    bdir.mkdir()
    for p in BENCH.glob("*.json"):
        (bdir / p.name).write_bytes(p.read_bytes())
    render(bdir, tmp_path / "BENCHMARKS.md", BENCH / "suites")
    assert (tmp_path / "BENCHMARKS.md").read_text(encoding="utf-8") == (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8"), \
        "BENCHMARKS.md is stale: run `mmdistill bench --render-only`"
    for p in BENCH.glob("*.json"):
        assert (bdir / f"{p.stem}.csv").read_text() == (BENCH / f"{p.stem}.csv").read_text(), p.stem


def _sections(md: str) -> dict[str, str]:
    parts = re.split(r"^### ", md, flags=re.M)[1:]
    return {p.split("\n", 1)[0]: p for p in parts}


def test_each_dataset_section_opens_with_a_headline_pivot_in_fixed_order():
    md = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    suites = _suites()
    for title, body in _sections(md).items():
        ds, suite = re.match(r"(\S+) · suite `(\w+)`", title).groups()
        rows = [r for r in suites[suite] if r["dataset"] == ds]
        table = [ln for ln in body.splitlines() if ln.startswith("|")]
        if suite == "kd":
            continue
        header, body_rows = table[0], table[2:]
        budgets = sorted({r["budget"] for r in rows if not r["method"].startswith("full") and r["metric"] in ("fused_acc", "r_mean")})
        assert header == "| method | " + " | ".join(f"{b} {'pairs' if ds == 'emoji' else 'ipc'}" for b in budgets) + " |"
        names = [ln.split("|")[1].strip().split(" (")[0] for ln in body_rows if ln.split("|")[1].strip()]
        names = names[:names.index("full") + 1]
        assert names == [m for m in METHOD_ORDER if m in names], names  # fixed order, full last
        assert "random" in names and names[-1] == "full"
        assert "Regenerate: `mmdistill bench --suite " + suite in body


def test_headline_numbers_come_from_the_rows():
    md = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    sec = _sections(md)["av-digits-hard · suite `av`"]
    rows = {(r["method"], r["budget"], r["metric"]): r for r in _suites()["av"]
            if r["dataset"] == "av-digits-hard" and r["eval_arch"] == "convnet"}
    dm = rows[("dm", 1, "fused_acc")]
    full = next(r for (m, _, k), r in rows.items() if m == "full" and k == "fused_acc")
    line = next(ln for ln in sec.splitlines() if ln.startswith("| dm |"))
    first = line.split("|")[2]
    assert f"{dm['mean']:.2f} ± {dm['std']:.2f}" in first and f"{100 * dm['mean'] / full['mean']:.0f} %" in first
    assert f"({dm['n_sets']}×{dm['n_seeds'] // dm['n_sets']})" in first
    # one full-data number per dataset and protocol: each results table has at most one full line, and the
    # section has one table with a full line per protocol that measured the full data
    tables, block = [], []
    for ln in sec.splitlines() + [""]:
        if ln.startswith("|"):
            block.append(ln)
        elif block:
            tables.append(block)
            block = []
    per_table = [sum(ln.startswith("| full (") for ln in t) for t in tables]
    assert all(n <= 1 for n in per_table), per_table
    full_protocols = {r["method"] for (m, _, k), r in rows.items() if m.startswith("full") and k == "fused_acc"}
    assert sum(per_table) == len(full_protocols), (per_table, full_protocols)


def test_single_evaluations_have_no_spread_and_no_internal_notes():
    rows = [{"suite": "t", "dataset": "d", "method": m, "budget": 1, "budget_unit": "ipc", "eval_arch": "convnet",
             "metric": "fused_acc", "mean": v, "std": 0.0, "n_seeds": n, "n_sets": 1, "cell": m}
            for m, v, n in (("random", 10.0, 1), ("dm", 20.0, 3))]
    md = render_markdown({"t": rows})
    assert "| random | 10.00 (1×1) |" in md and "| dm | 20.00 ± 0.00 (1×3) |" in md
    real = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    assert not re.search(r"issue \d|session \d|§\d", real, flags=re.I)
    # every row a missed target's explanation quotes through a placeholder is measured
    assert "(not measured)" not in real and not re.search(r"\{(row|mean|pct|gain):", real)


def test_csv_has_one_row_per_cell_and_metric_columns():
    rows = _suites()["vl"]
    text = suite_csv(rows)
    table = list(csv.DictReader(io.StringIO(text)))
    keys = {(r["method"], r["budget"], r["eval_arch"], r.get("syn_steps")) for r in rows}
    assert len(table) == len(keys)
    mdm = next(t for t in table if t["method"] == "mdm" and t["budget"] == "100")
    src = next(r for r in rows if r["method"] == "mdm" and r["budget"] == 100 and r["metric"] == "r_mean")
    assert float(mdm["r_mean_mean"]) == src["mean"] and float(mdm["r_mean_std"]) == src["std"]


def test_suite_cost_table_sums_each_cell_once():
    rows = [{"suite": "av", "dataset": "d", "method": "dm", "budget": 1, "budget_unit": "ipc", "eval_arch": "convnet",
             "cell": c, "metric": m, "mean": 1.0, "std": 0.0, "n_seeds": 1, "wall_s": w, "cpu_s": w / 2, "threads": 1}
            for c, w in (("a", 3600.0), ("b", 1800.0)) for m in ("fused_acc", "audio_acc")]
    md = render_markdown({"av": rows})
    line = next(ln for ln in md.splitlines() if ln.startswith("| `av` |"))
    assert line == "| `av` | 2 | 1.5 | 0.8 | 1 |", line


def test_kd_paper_protocol_rows_get_their_own_table():
    def row(method, metric, mean, arch="convnet"):
        return {"suite": "kd", "dataset": "d", "method": method, "budget": "full", "budget_unit": "training split",
                "eval_arch": arch, "metric": metric, "mean": mean, "std": 0.0, "n_seeds": 3, "n_sets": None,
                "cell": f"d/a->v/{method}/{arch}", "teacher_modality": "audio", "student_modality": "visual",
                "protocol": {"task": "cross-modal KD", "protocol": "paper" if "@paper" in method else "common"}}
    rows = [row("no-kd", "student_acc", 40.0), row("no-kd", "teacher_acc", 70.0), row("kd", "student_acc", 42.0),
            row("no-kd@paper", "student_acc", 30.0), row("no-kd@paper", "teacher_acc", 60.0),
            row("kd@paper", "student_acc", 35.0), row("no-kd@gap-head", "student_acc", 41.0, "convnet-gap")]
    md = render_markdown({"kd": rows})
    common, paper = md.split("under the `paper` training protocol")
    assert "| kd | 42.00 ± 0.00 (+2.00) |" in common and "@paper" not in common.split("Regenerate")[0]
    assert "| kd | 35.00 ± 0.00 (+5.00) |" in paper and "| teacher (teacher modality) | 60.00" in paper
    assert "`mmdistill bench --suite kd --only @paper`" in paper and "no-kd@gap-head" in common


def test_cost_section_names_the_expert_buffer_cost():
    def row(method, metric, mean):
        return {"suite": "vl", "dataset": "d", "method": method, "budget": 100, "budget_unit": "pairs",
                "eval_arch": "convnet", "metric": metric, "mean": mean, "std": 0.0, "n_seeds": 3, "n_sets": 1,
                "cell": f"d/{method}/100pairs/convnet"}
    rows = [row(m, k, v) for m in ("mtt-vl", "lors") for k, v in (
        ("r_mean", 10.0), ("distill_wall_s", 5.0), ("s_per_iter", 0.1), ("experts_wall_s_per_trajectory", 59.0),
        ("experts_n", 3.0), ("experts_mb_per_trajectory", 1.83), ("experts_final_loss", 6.1),
        ("experts_chance_loss", 6.93))]
    md = render_markdown({"vl": rows})
    line = next(ln for ln in md.splitlines() if ln.startswith("Expert buffer read by"))
    assert "`mtt-vl`, `lors`" in line and "3 trajectories, 59.0 s wall and 1.83 MB each" in line
    assert "InfoNCE 6.10 (chance: ln batch = 6.93)" in line and md.count("Expert buffer read by") == 1
