"""Run-directory guards: a run directory only ever holds one synthetic set and the results of that set.

* :func:`config_changes` compares a checkpoint's resolved config with the one a resume asks for. Fields that
  define *which* set is being learned (method, dataset, budget, seed, data parameters, method parameters) may not
  change: a resume with a different budget would otherwise continue the old tensors under a new name. The number
  of iterations and learning rates may change on resume (e.g. lowering a learning rate after a divergence); such
  changes are returned so the caller records them, with the iteration they take effect at.
* :func:`prepare_fresh` refuses to distil into a directory that already holds a run unless asked to overwrite it,
  and then removes every artefact of the old run first (a stale ``results.json`` next to a new set would be read
  as the new set's score).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from .errors import ConfigError

#: What a run directory may contain; ``--overwrite`` removes exactly these.
RUN_ARTEFACTS = ("config.yaml", "log.jsonl", "checkpoint", "synthetic.safetensors", "manifest.json", "eval",
                 "report.html", "plots")
#: Top-level config sections that do not define the set (evaluation protocol, run loop, device, history).
NON_IDENTITY_SECTIONS = ("eval", "run", "device", "changes")


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> ``{"a.b.c": leaf}`` (lists and scalars are leaves)."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def may_change_on_resume(key: str) -> bool:
    """``params.iterations`` and learning rates (``params.lr``, ``params.lr_audio``, ``params.syn_lr`` ...)."""
    if not key.startswith("params."):
        return False
    leaf = key.rsplit(".", 1)[-1]
    return key == "params.iterations" or leaf == "lr" or leaf.startswith("lr_") or leaf.endswith("_lr")


def config_changes(old: dict[str, Any], new: dict[str, Any], where: str = "checkpoint") -> dict[str, tuple[Any, Any]]:
    """The allowed changes ``{key: (old, new)}`` from ``old`` to ``new`` (both resolved run configs).

    Raises :class:`ConfigError` naming every differing identity field when any of them differs.
    """
    a = flatten({k: v for k, v in old.items() if k not in NON_IDENTITY_SECTIONS})
    b = flatten({k: v for k, v in new.items() if k not in NON_IDENTITY_SECTIONS})
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    bad = [k for k in differ if not may_change_on_resume(k)]
    if bad:
        detail = "; ".join(f"{k}: {a.get(k)!r} in the {where}, {b.get(k)!r} requested" for k in bad)
        raise ConfigError(f"--resume: the requested run differs from the {where} in {', '.join(bad)} ({detail}). "
                          "These fields define the synthetic set; resume with the run's own values "
                          "(drop --method/--dataset/--config to read them from its config.yaml), or start a new "
                          "run in another --out directory (or --overwrite this one)")
    return {k: (a.get(k), b.get(k)) for k in differ}


def is_occupied(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(run_dir.iterdir())


def check_fresh(run_dir: Path, overwrite: bool) -> None:
    """Refuse to start a new run in a non-empty ``run_dir`` unless ``overwrite``."""
    if is_occupied(run_dir) and not overwrite:
        raise ConfigError(f"{run_dir}: the directory is not empty (it holds "
                          f"{', '.join(sorted(p.name for p in run_dir.iterdir())[:6])}); pass --resume to continue "
                          "its run, --overwrite to replace it, or choose another --out")


def clear_run(run_dir: Path) -> None:
    """Remove every artefact of a run (and its results) from ``run_dir``; other files stay."""
    if not run_dir.is_dir():
        return
    for name in RUN_ARTEFACTS:
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    for p in run_dir.glob("results*.json"):
        p.unlink()
