"""Benchmark suites as data: ``benchmarks/suites/<name>.yaml`` -> a list of cells.

A suite file holds ``name``, optional ``threads`` (intra-op threads of every cell), ``kind`` (``kd`` for
cross-modal KD cells), ``defaults`` (group fields every group starts from) and ``groups``. Each group expands to
the product datasets x budgets x methods (in that nesting order); its fields:

- ``datasets`` (or, for ``kind: kd``, ``directions``: mappings ``dataset``/``teacher``/``student``/``data``),
  ``budgets`` + ``unit`` (absent: the whole training set), ``methods`` (row names);
- ``config``: a shipped run config, ``{method}`` and ``{dataset}`` filled in, relative to the configs directory;
  its ``method:`` is the CLI method (the row keeps the listed name when it differs, e.g. ``dm-avdd-lr``) and its
  ``params:`` the base params;
- ``variants``: instead of ``methods``, ``label: {params: ..., seeds: ..., ...}`` rows on the config's method;
- ``params``, ``data``, ``eval``, ``seeds``, ``syn_seeds``, ``extra_archs``, ``extra``, ``eval_arch``,
  ``label_suffix``; ``params`` merge over the config's (mappings key by key; an empty mapping replaces);
- ``expert_buffer: true``: ``params.buffer`` is the cache path of ``params.experts`` (trained once per suite
  before any cell runs, :mod:`mmdistill.bench.buffers`);
- ``eval_config`` / ``eval_encoder_of``: the ``eval`` block of a config (without its seeds) / the pretrained
  image encoder of a config's expert buffer, shared by every cell so all rows have one protocol;
- ``where``: ``[{dataset, budget, methods, set: {field: value}}]`` rules overriding fields of matching cells
  (``set: {params: {...}}`` merges over the cell's params, e.g. settings chosen per budget);
- ``av_retrieval: true``: audio-visual sets are also evaluated by audio-visual retrieval (ConvNet; rows ``avr_*``);
- ``protocols: [paper]``: the same sets are also evaluated under these ``eval.protocol`` values (ConvNet; rows
  ``<method>@<protocol>``), so each paper's own evaluation learner sits next to the common one.

``MMDISTILL_BENCH_EXTRA_ARCHS`` (comma list, "" for none) restricts the extra evaluation architectures of a run;
the re-run cell's rows under the other architectures are then removed, not kept (they describe the previous set).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import load_yaml
from ..errors import ConfigError
from .buffers import buffer_path
from .spec import Cell, KDCell

ARCHS_ENV = "MMDISTILL_BENCH_EXTRA_ARCHS"
_GROUP_KEYS = {"datasets", "directions", "budgets", "unit", "methods", "config", "variants", "params", "data", "eval",
               "seeds", "syn_seeds", "extra_archs", "extra", "eval_arch", "label_suffix", "expert_buffer",
               "eval_config", "eval_encoder_of", "where", "av_retrieval", "protocols"}
_CELL_OVERRIDES = {"seeds", "syn_seeds", "params", "extra_archs", "extra", "eval", "protocols"}


@dataclass
class Suite:
    name: str
    cells: list[Cell]
    threads: int | None = None
    description: str = ""
    path: Path | None = None
    buffers: list[tuple[str, dict[str, Any], dict[str, Any], Path]] = field(default_factory=list)  # (ds, data, experts, path)


def find_dirs(suites_dir: str | Path | None = None, configs_dir: str | Path | None = None,
              root: str | Path | None = None) -> tuple[Path, Path]:
    """(suites dir, configs dir): the arguments, else ``benchmarks/suites`` and ``configs`` under ``root``
    (default: the current directory, i.e. a checkout of the repository)."""
    base = Path(root) if root is not None else Path.cwd()
    s = Path(suites_dir) if suites_dir is not None else base / "benchmarks" / "suites"
    c = Path(configs_dir) if configs_dir is not None else base / "configs"
    for what, p, flag in (("suites", s, "--suites"), ("configs", c, "--configs")):
        if not p.is_dir():
            raise ConfigError(f"{what} directory {p} not found: run from a checkout of the repository (which has "
                              f"benchmarks/suites/ and configs/) or pass {flag} DIR")
    return s, c


def suite_names(suites_dir: Path) -> list[str]:
    return sorted(p.stem for p in Path(suites_dir).glob("*.yaml"))


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """``b`` over ``a``, mappings merged key by key; an empty mapping in ``b`` replaces (clears) ``a``'s."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and v and isinstance(out.get(k), dict) else v
    return out


def _config(configs_dir: Path, pattern: str, method: str, dataset: str) -> dict[str, Any]:
    path = configs_dir / pattern.format(method=method, dataset=dataset)
    if not path.is_file():
        raise ConfigError(f"suite config {path} not found (pattern {pattern!r})")
    return load_yaml(path)


def _archs(group: dict[str, Any]) -> list[str]:
    return _restrict(list(group.get("extra_archs") or []))


def _restrict(archs: list[str]) -> list[str]:
    """``archs`` as ``MMDISTILL_BENCH_EXTRA_ARCHS`` restricts them (unset: unchanged)."""
    env = os.environ.get(ARCHS_ENV)
    if env is None or not archs:
        return archs
    return [a.strip() for a in env.split(",") if a.strip()]


def _matches(rule: dict[str, Any], dataset: str, budget: int | None, row: str) -> bool:
    return ((rule.get("dataset") is None or rule["dataset"] == dataset)
            and (rule.get("budget") is None or rule["budget"] == budget)
            and (rule.get("methods") is None or row in rule["methods"]))


def load_suite(name: str, suites_dir: str | Path | None = None, configs_dir: str | Path | None = None) -> Suite:
    """The cells of suite ``name`` (``<suites_dir>/<name>.yaml``), method params read from ``configs_dir``."""
    sdir, cdir = find_dirs(suites_dir, configs_dir)
    path = sdir / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown suite {name!r}; known: {', '.join(suite_names(sdir)) or '(none)'} (in {sdir})")
    spec = load_yaml(path)
    defaults = dict(spec.get("defaults") or {})
    kind = spec.get("kind", "distill")
    threads = spec.get("threads")
    suite = Suite(name=str(spec.get("name", name)), cells=[], threads=threads, path=path)
    for i, g in enumerate(spec.get("groups") or []):
        group = {**defaults, **g}
        unknown = set(group) - _GROUP_KEYS
        if unknown:
            raise ConfigError(f"{path}: group {i}: unknown keys {sorted(unknown)}")
        cells = _kd_group(suite.name, group, cdir) if kind == "kd" else _distill_group(suite, group, cdir)
        for c in cells:
            c.threads = threads
        suite.cells += cells
    ids = [i for c in suite.cells for i in c.ids]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ConfigError(f"{path}: duplicate cell ids {dup}")
    return suite


def _entries(group: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(row name, method name used to find the config, variant fields) of a group."""
    if group.get("variants"):
        if not group.get("config"):
            raise ConfigError("a group with variants needs a config")
        return [(label, "", dict(v or {})) for label, v in group["variants"].items()]
    return [(m + group.get("label_suffix", ""), m, {}) for m in group.get("methods") or []]


def _distill_group(suite: Suite, group: dict[str, Any], cdir: Path) -> list[Cell]:
    cells: list[Cell] = []
    data = dict(group.get("data") or {})
    for ds in group.get("datasets") or []:
        ev: dict[str, Any] = {}
        if group.get("eval_config"):
            ev = dict(_config(cdir, group["eval_config"], "", ds).get("eval") or {})
            ev.pop("seeds", None)
        if group.get("eval_encoder_of"):
            experts = (_config(cdir, group["eval_encoder_of"], "", ds).get("params") or {}).get("experts") or {}
            ev["image_encoder_weights"] = str(buffer_path(ds, data, experts) / "image_encoder.safetensors")
        ev = merge(ev, group.get("eval") or {})
        for budget in group.get("budgets") or [None]:
            for row, base_method, variant in _entries(group):
                method, params = base_method, {}
                if group.get("config"):
                    cfg = _config(cdir, group["config"], base_method, ds)
                    method = str(cfg.get("method") or base_method)
                    params = dict(cfg.get("params") or {})
                params = merge(merge(params, group.get("params") or {}), variant.get("params") or {})
                fields: dict[str, Any] = {"seeds": list(group.get("seeds") or [0, 1, 2]),
                                          "syn_seeds": group.get("syn_seeds"), "extra_archs": _archs(group),
                                          "extra": dict(group.get("extra") or {}),
                                          "av_retrieval": bool(group.get("av_retrieval", False)),
                                          "protocols": list(group.get("protocols") or [])}
                fields.update({k: v for k, v in variant.items() if k in _CELL_OVERRIDES - {"params"}})
                for rule in group.get("where") or []:
                    if _matches(rule, ds, budget, row):
                        rule_set = dict(rule.get("set") or {})
                        params = merge(params, rule_set.pop("params", None) or {})  # e.g. per-budget settings
                        fields.update(rule_set)
                fields["extra_archs"] = _restrict(list(fields["extra_archs"] or []))
                if group.get("expert_buffer"):
                    experts = params.get("experts")
                    if not isinstance(experts, dict):
                        raise ConfigError(f"suite {suite.name}: {row} has expert_buffer but no params.experts")
                    path = buffer_path(ds, data, experts)
                    params["buffer"] = str(path)
                    if all(b[3] != path for b in suite.buffers):
                        suite.buffers.append((ds, data, experts, path))
                cells.append(Cell(suite.name, ds, method, budget, group.get("unit") if budget else None,
                                  eval_arch=group.get("eval_arch", "convnet"), data=dict(data), params=params,
                                  eval=dict(ev), label=None if row == method else row, **fields))
    return cells


def _kd_group(suite: str, group: dict[str, Any], cdir: Path) -> list[Cell]:
    """KD cells; a method name with a config ``kd/variants/<name>.yaml`` is that config's ``method`` + ``params``
    (variants and controls of a registered loss), the row keeping the variant's name."""
    cells: list[Cell] = []
    for d in group.get("directions") or []:
        for row, m, _ in _entries(group):
            tm, sm = d["teacher"], d["student"]
            method, params = m, {}
            variant = cdir / "kd" / "variants" / f"{m}.yaml"
            if variant.is_file():
                spec = load_yaml(variant)
                method, params = str(spec["method"]), dict(spec.get("params") or {})
            cells.append(KDCell(suite, d["dataset"], method, eval_arch=group.get("eval_arch", "convnet"),
                                seeds=list(group.get("seeds") or [0, 1, 2]), data=dict(d.get("data") or {}),
                                params=merge(params, group.get("params") or {}), eval=dict(group.get("eval") or {}),
                                label=None if row == method else row,
                                extra={"teacher_modality": tm, "student_modality": sm},
                                teacher_modality=tm, student_modality=sm))
    return cells
