"""Results: metrics as mean ± std over seeds, with the protocol written out in full."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import atomic_write_json


def aggregate(per_seed: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """[{metric: value}] per seed -> {metric: {"mean", "std", "per_seed"}} (sample std; 0 for one seed)."""
    names = list(per_seed[0]) if per_seed else []
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        vals = [float(r[n]) for r in per_seed]
        out[n] = {
            "mean": statistics.fmean(vals),
            "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "per_seed": vals,
        }
    return out


@dataclass
class Results:
    dataset: str
    method: str
    budget: dict[str, Any] | None
    protocol: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = {"dataset": self.dataset, "method": self.method, "budget": self.budget,
             "protocol": self.protocol, "metrics": self.metrics}
        d.update(self.extra)
        return d

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.as_dict())

    def line(self, keys: list[str] | None = None) -> str:
        keys = keys or list(self.metrics)
        return "  ".join(f"{k} {self.metrics[k]['mean']:.2f}±{self.metrics[k]['std']:.2f}" for k in keys if k in self.metrics)
