"""Benchmark targets as data: the ``targets:`` list of a suite file, checked against the suite's rows.

Kinds (every selector defaults to the target's ``dataset`` and ConvNet evaluation):

- ``order``: ``chain: [a, ">", b, "≥", c, ...]`` on ``metric`` at ``budget``;
- ``retention``: ``method`` (or the best of ``methods``) at ``budget`` keeps at least ``min`` (a fraction) of the
  ``full`` row's ``metric``;
- ``max``: ``select``'s mean is at most ``max``;
- ``ratio``: ``num`` / ``den`` means, at most ``max`` and/or at least ``min``;
- ``within_std``: ``a``'s mean is at least ``b``'s mean minus ``b``'s std;
- ``gain_any``: in at least one direction (KD), ``method`` (or the best of ``methods`` in that direction) minus
  ``base`` on ``metric`` is at least ``min``;
- ``each_above``: every one of ``methods`` above its ``base`` (one method, or a mapping method -> base such as each
  method's own starting set) at every one of ``budgets``, under each protocol of ``protocols``;
- ``best_of``: the best of ``methods`` on ``metric`` at ``budget`` is at least ``vs``'s mean.

A target may carry ``why_missed``: the control experiment that explains a miss, rendered next to it. Its numbers
that come from the suite's own rows are written as placeholders (:func:`why_missed_text`) so they follow the rows.
"""

from __future__ import annotations

import re
from typing import Any

_ANY = object()
_KEYS = {"method": "method", "metric": "metric", "budget": "budget", "arch": "eval_arch", "syn_steps": "syn_steps",
         "dataset": "dataset", "teacher_modality": "teacher_modality", "student_modality": "student_modality"}


class Rows:
    """Rows of ``benchmarks/<suite>.json`` with a selector lookup."""

    def __init__(self, rows: list[dict[str, Any]]):
        self.rows = rows

    def filter(self, **sel: Any) -> list[dict[str, Any]]:
        out = []
        for r in self.rows:
            if all(r.get(_KEYS[k]) == v for k, v in sel.items() if v is not _ANY):
                out.append(r)
        return out

    def get(self, **sel: Any) -> dict[str, Any] | None:
        got = self.filter(**sel)
        return got[0] if got else None


def _sel(t: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    out = {"dataset": t.get("dataset", _ANY), "arch": "convnet", "syn_steps": None}
    out.update(s)
    if "budget" not in s and "budget" in t:
        out["budget"] = t["budget"]
    return {k: (_ANY if v is None and k == "dataset" else v) for k, v in out.items()}


def _fmt(r: dict[str, Any], digits: int = 2) -> str:
    n = r.get("n_seeds") or 1
    return f"{r['mean']:.{digits}f}" + (f" ± {r['std']:.{digits}f}" if n > 1 else "")


def _each_above(t: dict[str, Any], rows: Rows) -> tuple[str, bool | None]:
    """Every ``methods`` row above its base at every ``budgets`` entry under every protocol of ``protocols``
    ("" = the common rows, ``paper`` = the ``<method>@paper`` rows). ``base`` is one method (e.g. ``random``) or a
    mapping method -> base (e.g. each method's own starting set); with ``factor`` the bound is ``factor × base``
    (met at ≥), without it the method must be strictly above."""
    below, missing, n = [], [], 0
    for proto in t.get("protocols") or [""]:
        sfx = f"@{proto}" if proto else ""
        for m in t["methods"]:
            b = t["base"] if isinstance(t["base"], str) else t["base"].get(m)
            if b is None:
                continue
            for budget in t["budgets"]:
                got = rows.get(**_sel(t, {"method": m + sfx, "metric": t["metric"], "budget": budget}))
                ref = rows.get(**_sel(t, {"method": b + sfx, "metric": t["metric"], "budget": budget}))
                if got is None or ref is None:
                    missing += [f"{x} {budget}" for x, r in ((m + sfx, got), (b + sfx, ref))
                                if r is None and f"{x} {budget}" not in missing]
                    continue
                n += 1
                ok = (got["mean"] >= float(t["factor"]) * ref["mean"] or (ref["mean"] > 0 and got["mean"] / ref["mean"] >= float(t["factor"]))
                      if "factor" in t else got["mean"] > ref["mean"])
                if not ok:
                    below.append(f"{m + sfx} {budget}: {got['mean']:.2f} vs {b + sfx} {ref['mean']:.2f}")
    if not n:
        return "missing rows: " + ", ".join(missing), None
    text = f"{n - len(below)} of {n} above" + (f"; below: {'; '.join(below)}" if below else "")
    text += f"; missing: {', '.join(missing)}" if missing else ""
    return text, (False if below else (None if missing else True))


def check_target(t: dict[str, Any], rows: Rows) -> tuple[str, bool | None]:
    """(value text, met?) of target ``t``; ``None`` when rows are missing."""
    kind = t.get("kind")
    if kind == "order":
        chain = t["chain"]
        names, ops = chain[0::2], chain[1::2]
        got = [rows.get(**_sel(t, {"method": m, "metric": t["metric"]})) for m in names]
        if any(g is None for g in got):
            return "missing rows: " + ", ".join(m for m, g in zip(names, got) if g is None), None
        ok = all((a["mean"] > b["mean"]) if op == ">" else (a["mean"] >= b["mean"])
                 for a, b, op in zip(got, got[1:], ops))
        text = " ".join(f"{m} {_fmt(g)}" + (f" {op}" if i < len(ops) else "")
                        for i, (m, g, op) in enumerate(zip(names, got, [*ops, ""])))
        return text, ok
    if kind == "retention":
        names = t.get("methods") or [t["method"]]
        have = [(m, r) for m in names if (r := rows.get(**_sel(t, {"method": m, "metric": t["metric"]}))) is not None]
        full = rows.get(**{**_sel(t, {"method": "full", "metric": t["metric"]}), "budget": _ANY})
        if not have or full is None or not full["mean"]:
            return "missing rows", None
        m, r = max(have, key=lambda mr: mr[1]["mean"])
        ratio = r["mean"] / full["mean"]
        missing = [n for n in names if n not in {h for h, _ in have}]
        text = (f"{'best ' + m + ' ' if 'methods' in t else ''}{_fmt(r)} / full {_fmt(full)} = {100 * ratio:.1f} %"
                + (f" (missing: {', '.join(missing)})" if missing else ""))
        ok = ratio >= float(t["min"])
        return text, (ok if ok or not missing else None)
    if kind == "max":
        r = rows.get(**_sel(t, t["select"]))
        if r is None:
            return "missing rows", None
        return f"{r['mean']:.1f} (limit {t['max']})", r["mean"] <= float(t["max"])
    if kind == "ratio":
        a, b = rows.get(**_sel(t, t["num"])), rows.get(**_sel(t, t["den"]))
        if a is None or b is None or not b["mean"]:
            return "missing rows", None
        q = a["mean"] / b["mean"]
        ok = (q <= float(t["max"]) if "max" in t else True) and (q >= float(t["min"]) if "min" in t else True)
        return f"{a['mean']:.4g} / {b['mean']:.4g} = {q:.3f}", ok
    if kind == "within_std":
        a, b = rows.get(**_sel(t, t["a"])), rows.get(**_sel(t, t["b"]))
        if a is None or b is None:
            return "missing rows", None
        return (f"{a['mean']:.2f} vs {b['mean']:.2f} − {b['std']:.2f} = {b['mean'] - b['std']:.2f}",
                a["mean"] >= b["mean"] - b["std"])
    if kind == "gain_any":
        best: dict[str, tuple[str, float]] = {}  # direction -> (method, gain): the best of ``methods`` per direction
        for m in t.get("methods") or [t["method"]]:
            for r in rows.filter(method=m, metric=t["metric"], arch="convnet", dataset=t.get("dataset", _ANY)):
                base = rows.get(method=t["base"], metric=t["metric"], arch="convnet", dataset=r["dataset"],
                                teacher_modality=r.get("teacher_modality"), student_modality=r.get("student_modality"))
                d = f"{r['dataset']} {r.get('teacher_modality')}→{r.get('student_modality')}"
                if base is not None and (d not in best or r["mean"] - base["mean"] > best[d][1]):
                    best[d] = (m, r["mean"] - base["mean"])
        if not best:
            return "missing rows", None
        named = "methods" in t
        return ("; ".join(f"{d} {m + ' ' if named else ''}{g:+.2f}" for d, (m, g) in best.items()),
                any(g >= float(t["min"]) for _, g in best.values()))
    if kind == "each_above":
        return _each_above(t, rows)
    if kind == "best_of":
        got = {m: rows.get(**_sel(t, {"method": m, "metric": t["metric"]})) for m in t["methods"]}
        vs = rows.get(**_sel(t, {"method": t["vs"], "metric": t["metric"]}))
        have = {m: g for m, g in got.items() if g is not None}
        if not have or vs is None:
            return "missing rows: " + ", ".join([m for m, g in got.items() if g is None] + ([t["vs"]] if vs is None else [])), None
        best = max(have, key=lambda m: have[m]["mean"])
        missing = [m for m, g in got.items() if g is None]
        text = f"best {best} {_fmt(have[best])} vs {t['vs']} {_fmt(vs)}" + (f" (missing: {', '.join(missing)})" if missing else "")
        ok = have[best]["mean"] >= vs["mean"]
        return text, (ok if ok or not missing else None)
    raise ValueError(f"unknown target kind {kind!r}")


_PLACEHOLDER = re.compile(r"\{(row|mean|pct|gain):([^{}]+)\}")


def why_missed_text(t: dict[str, Any], rows: Rows) -> str:
    """``t['why_missed']`` with its row placeholders filled from the current rows, so an explanation never quotes
    a number the page no longer shows. On the target's dataset, metric and ConvNet evaluation:

    - ``{row:METHOD:BUDGET}`` -> mean ± std of that row; ``{mean:METHOD:BUDGET}`` -> its mean;
    - ``{pct:METHOD:BUDGET}`` -> its mean as a percentage of the ``full`` row (``full@paper`` for an ``@paper``
      method);
    - ``{gain:A:B:BUDGET}`` -> A's mean minus B's mean, signed.

    ``BUDGET`` may be ``full`` for the full-data rows; a last ``:METRIC`` argument reads another metric than the
    target's (e.g. ``{mean:dm:10:avr_r_mean}``). A row that is not measured renders as ``(not measured)``; a
    malformed placeholder raises ``ValueError`` naming the target."""
    text = str(t.get("why_missed") or "")

    def row(method: str, budget: str, metric: str | None = None) -> dict[str, Any] | None:
        sel = _sel(t, {"method": method, "metric": metric or t["metric"]})
        sel["budget"] = _ANY if budget == "full" else int(budget)
        return rows.get(**sel)

    def fill(m: re.Match) -> str:
        kind, args = m.group(1), m.group(2).split(":")
        n = 3 if kind == "gain" else 2
        if len(args) not in (n, n + 1) or (args[n - 1] != "full" and not args[n - 1].isdigit()):
            raise ValueError(f"target {t.get('name')!r}: malformed placeholder {m.group(0)!r}")
        metric = args[n] if len(args) > n else None
        if kind == "gain":
            a, b = row(args[0], args[2], metric), row(args[1], args[2], metric)
            return "(not measured)" if a is None or b is None else f"{a['mean'] - b['mean']:+.2f}"
        r = row(args[0], args[1], metric)
        if r is None:
            return "(not measured)"
        if kind == "row":
            return _fmt(r)
        if kind == "mean":
            return f"{r['mean']:.2f}"
        full = row("full" + ("@" + args[0].split("@", 1)[1] if "@" in args[0] else ""), "full", metric)
        return "(not measured)" if full is None or not full["mean"] else f"{100 * r['mean'] / full['mean']:.1f} %"

    return _PLACEHOLDER.sub(fill, text)
