"""Read a run directory for a report, tolerantly: each missing or broken piece becomes a message.

Only a path that is not a directory at all is an error (:class:`MMDistillError`, exit code 2); a run
without a synthetic set, log, results or loadable dataset still gets a page whose sections say what is
missing and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import MMDistillError
from ..evaluate.results import set_mismatch
from ..synth import MANIFEST_FILE, SyntheticSet

LOG_FILE = "log.jsonl"
MISMATCH = "results for another set: "
#: Files of which at least one makes a directory a run directory (besides results*.json).
RUN_MARKERS = ("config.yaml", MANIFEST_FILE, "synthetic.safetensors", LOG_FILE)


@dataclass
class RunData:
    """What a report needs from one run directory; ``*_error`` says why a piece is absent."""

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    config_error: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    syn: SyntheticSet | None = None
    syn_error: str | None = None
    log: list[dict[str, Any]] | None = None
    log_error: str | None = None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    results_errors: dict[str, str] = field(default_factory=dict)
    dataset: Any = None  # PairedDataset (train split) or None
    dataset_error: str | None = None
    reference_dir: Path | None = None  # the cached full-data reference of this run's dataset/data/protocol
    reference: dict[str, dict[str, Any]] = field(default_factory=dict)  # its results*.json by file name

    @property
    def meta(self) -> dict[str, Any]:
        if self.syn is not None:
            return self.syn.meta
        return dict(self.manifest.get("meta") or {})

    @property
    def method(self) -> str:
        return str(self.config.get("method") or self.meta.get("method") or _first(self.results, "method") or "?")

    @property
    def dataset_name(self) -> str:
        return str(self.config.get("dataset") or self.meta.get("dataset") or _first(self.results, "dataset") or "?")

    def dataset_meta(self) -> dict[str, Any]:
        return dict(getattr(self.dataset, "meta", None) or {})


def _first(results: dict[str, dict[str, Any]], key: str) -> Any:
    for r in results.values():
        if r.get(key) is not None:
            return r[key]
    return None


def check_run_dir(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise MMDistillError(f"{p}: no such run directory")
    if not p.is_dir():
        raise MMDistillError(f"{p}: not a directory (expected a run directory made by `mmdistill distill`)")
    if not any((p / m).exists() for m in RUN_MARKERS) and not any(p.glob("results*.json")):
        raise MMDistillError(f"{p}: not a run directory (no {', '.join(RUN_MARKERS)} or results*.json); "
                             "make one with `mmdistill distill` or `mmdistill evaluate --real`")
    return p


def read_log(path: Path) -> tuple[list[dict[str, Any]] | None, str | None]:
    """(records, None) or (None, why). A torn or non-JSON line is skipped (a kill can leave one)."""
    if not path.is_file():
        return None, f"{path.name} missing: no training log in this run directory"
    recs: list[dict[str, Any]] = []
    bad = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(rec, dict):
            recs.append(rec)
        else:
            bad += 1
    if not recs and bad:
        return None, f"{path.name}: no valid JSON lines ({bad} unreadable)"
    return recs, None


def read_results(run_dir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """``results.json`` and ``results.<arch>.json`` by file name (sorted; results.json first)."""
    out: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    files = sorted(run_dir.glob("results*.json"), key=lambda p: (p.name != "results.json", p.name))
    for p in files:
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            errors[p.name] = f"not valid JSON ({e})"
            continue
        if not isinstance(d, dict) or not isinstance(d.get("metrics"), dict):
            errors[p.name] = "field 'metrics' missing or not a mapping"
            continue
        why = set_mismatch(run_dir, d, p.name)
        if why:
            errors[p.name] = MISMATCH + why
            continue
        out[p.name] = d
    return out, errors


def load_run(path: str | Path, *, data_root: str | None = None, load_data: bool = True) -> RunData:
    """Everything a report shows; ``load_data`` loads the train split (captions, norms, audio front end)."""
    run_dir = check_run_dir(path)
    rd = RunData(path=run_dir)
    cfg_path = run_dir / "config.yaml"
    if cfg_path.is_file():
        try:
            c = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
            rd.config = c if isinstance(c, dict) else {}
        except yaml.YAMLError as e:
            rd.config_error = f"config.yaml: not valid YAML ({e})"
    else:
        rd.config_error = "config.yaml missing"
    man = run_dir / MANIFEST_FILE
    if man.is_file():
        try:
            m = json.loads(man.read_text(encoding="utf-8"))
            rd.manifest = m if isinstance(m, dict) else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            pass
    try:
        rd.syn = SyntheticSet.load(run_dir)
    except MMDistillError as e:
        rd.syn_error = str(e)
    rd.log, rd.log_error = read_log(run_dir / LOG_FILE)
    rd.results, rd.results_errors = read_results(run_dir)
    _load_reference(rd)
    if load_data:
        _load_dataset(rd, data_root)
    else:
        rd.dataset_error = "dataset not loaded (--no-data)"
    return rd


def _load_reference(rd: RunData) -> None:
    """The full-data results ``mmdistill evaluate --real --like RUN_DIR`` cached for this run (if computed)."""
    from ..evaluate.reference import full_reference_dir

    if rd.dataset_name == "?":
        return
    data = rd.config.get("data") if isinstance(rd.config.get("data"), dict) else rd.meta.get("dataset_params")
    ev = rd.config.get("eval") if isinstance(rd.config.get("eval"), dict) else {}
    rd.reference_dir = full_reference_dir(rd.dataset_name, data if isinstance(data, dict) else {}, ev)
    if rd.reference_dir.is_dir():
        rd.reference, _ = read_results(rd.reference_dir)


def _load_dataset(rd: RunData, data_root: str | None) -> None:
    from ..data import load_dataset

    name = rd.dataset_name
    params = rd.config.get("data")
    if not isinstance(params, dict):
        params = rd.meta.get("dataset_params") if isinstance(rd.meta.get("dataset_params"), dict) else {}
    if name == "?":
        rd.dataset_error = "the run names no dataset (no config.yaml, manifest or results)"
        return
    try:
        rd.dataset = load_dataset(name, "train", data_root, **params)
    except MMDistillError as e:
        rd.dataset_error = f"dataset {name!r} could not be loaded: {e}"
