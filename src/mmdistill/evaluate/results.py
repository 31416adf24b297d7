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


SET_FILE = "synthetic.safetensors"


def set_mismatch(run_dir: str | Path, rec: dict[str, Any], name: str = "results.json") -> str | None:
    """Why the results ``rec`` (read from ``run_dir/name``) do not belong to the set beside them, or None.

    Results carry ``set_sha256``, the sha256 of the ``synthetic.safetensors`` they evaluated; a set replaced
    since (a new distill into the same directory) no longer matches. Results without the field (full-data
    results have no set) are checked against the manifest's budget when there is one.
    """
    import json

    from ..io import sha256_file

    run_dir = Path(run_dir)
    set_path = run_dir / SET_FILE
    want = rec.get("set_sha256")
    if want is not None:
        if not set_path.is_file():
            return f"{name} evaluated a set ({str(want)[:12]}…) but {SET_FILE} is missing"
        got = sha256_file(set_path)
        if got != want:
            return (f"{name} belongs to another set (set_sha256 {str(want)[:12]}…, {SET_FILE} is {got[:12]}…); "
                    f"re-evaluate with `mmdistill evaluate {run_dir}`")
        return None
    try:
        man = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    budget = (man.get("meta") or {}).get("budget") if isinstance(man, dict) else None
    if budget and rec.get("budget") and rec["budget"] != budget:
        return (f"{name} evaluated budget {rec['budget']}, but the set beside it has {budget}; "
                f"re-evaluate with `mmdistill evaluate {run_dir}`")
    return None
