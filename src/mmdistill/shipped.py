"""The run configs shipped under ``configs/``: sized for a small CPU box, one per (method, dataset).

The shipped config of a (method, dataset) is ``configs/<family>/<method>_<dataset>.yaml`` whose ``method:`` and
``dataset:`` keys name that pair (variants such as ``dm-avdd-lr_av-digits.yaml`` are shipped too, but are
never picked by default). ``distill`` uses it when no ``--config`` is given, so a plain
``mmdistill distill --method dm --dataset av-digits --ipc 1`` runs the quick setting instead of the paper-scale
defaults of the method's dataclass. Measured times come from the benchmark tables (``benchmarks/*.json``) when a
row for the same (method, dataset, budget) exists.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: Config families holding distillation/selection run configs (``configs/kd`` holds KD run configs).
FAMILIES = ("av", "coreset", "vl")


def _is_checkout(p: Path) -> bool:
    return (p / "configs").is_dir() and (p / "benchmarks").is_dir()


def repo_root() -> Path:
    """The checkout holding ``configs/`` and ``benchmarks/``: ``$MMDISTILL_REPO``, else the source tree this
    package runs from (an editable install), else the current directory or the nearest parent holding both
    (a wheel install run from a clone); the current directory when none does (no shipped configs then)."""
    env = os.environ.get("MMDISTILL_REPO")
    if env:
        return Path(env)
    src_tree = Path(__file__).resolve().parents[2]
    if _is_checkout(src_tree):
        return src_tree
    cwd = Path.cwd().resolve()
    return next((p for p in (cwd, *cwd.parents) if _is_checkout(p)), cwd)


@dataclass(frozen=True)
class ShippedConfig:
    path: Path
    method: str
    dataset: str
    budget: tuple[int, str] | None  # (value, "ipc" | "pairs")
    iterations: int | None
    data: dict[str, Any]

    @property
    def name(self) -> str:
        """The file's method name (``dm-avdd-lr`` for a variant): the benchmark tables' ``method`` column."""
        return self.path.stem.split("_", 1)[0]

    @property
    def is_default(self) -> bool:
        return self.path.stem == f"{self.method}_{self.dataset}"

    def rel(self) -> str:
        try:
            return str(self.path.relative_to(repo_root()))
        except ValueError:
            return str(self.path)


def _read(path: Path) -> ShippedConfig | None:
    try:
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(d, dict) or not d.get("method") or not d.get("dataset"):
        return None
    budget = (int(d["ipc"]), "ipc") if d.get("ipc") is not None else (int(d["pairs"]), "pairs") if d.get("pairs") else None
    params = d.get("params") if isinstance(d.get("params"), dict) else {}
    it = params.get("iterations")
    data = d.get("data") if isinstance(d.get("data"), dict) else {}
    return ShippedConfig(path, str(d["method"]), str(d["dataset"]), budget, int(it) if it is not None else None, data)


def shipped_configs(root: Path | None = None) -> list[ShippedConfig]:
    """Every distillation/selection config under ``configs/`` (sorted by family, then file name)."""
    base = (root or repo_root()) / "configs"
    out = []
    for fam in FAMILIES:
        for p in sorted((base / fam).glob("*.yaml")):
            c = _read(p)
            if c is not None:
                out.append(c)
    return out


def shipped_config(method: str, dataset: str, root: Path | None = None) -> ShippedConfig | None:
    """The default shipped config of (method, dataset), or None."""
    for c in shipped_configs(root):
        if c.is_default and c.method == method and c.dataset == dataset:
            return c
    return None


def measured_seconds(method: str, dataset: str, budget: tuple[int, str] | None, data: dict[str, Any] | None = None,
                     root: Path | None = None) -> tuple[float, str] | None:
    """Median wall time (distil + evaluate, seconds) and suite of the benchmark rows for this cell, if any.

    Rows are read from ``benchmarks/*.json`` (written by ``mmdistill bench``); the default evaluation
    architecture (convnet) and the same data parameters only. None when no row matches.
    """
    base = (root or repo_root()) / "benchmarks"
    tables = []
    for p in sorted(base.glob("*.json")):
        try:
            rows = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(rows, list):
            tables.append((p.stem, [r for r in rows if isinstance(r, dict) and r.get("method") == method
                                    and r.get("dataset") == dataset and r.get("eval_arch", "convnet") == "convnet"
                                    and isinstance(r.get("wall_s"), (int, float))
                                    and (budget is None or (r.get("budget"), r.get("budget_unit")) == budget)]))
    # rows that state their data parameters must match them; rows that do not are the fallback
    for same in (lambda r: "data_params" in r and (r["data_params"] or {}) == (data or {}),
                 lambda r: "data_params" not in r):
        for suite, rows in tables:
            walls = [float(r["wall_s"]) for r in rows if same(r)]
            if walls:
                return statistics.median(walls), suite
    return None


def describe(c: ShippedConfig, root: Path | None = None) -> dict[str, Any]:
    """One row of ``mmdistill configs``."""
    m = measured_seconds(c.name, c.dataset, c.budget, c.data, root)
    return {"config": c.rel(), "method": c.method, "dataset": c.dataset,
            "budget": f"{c.budget[0]} {c.budget[1]}" if c.budget else "-",
            "iterations": c.iterations if c.iterations is not None else "-",
            "measured": f"{m[0] / 60:.1f} min ({m[1]})" if m else "not measured", "default": c.is_default}
