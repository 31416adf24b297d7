"""Evaluation sweeps as a job list: run directories × evaluation archs × seeds (ecosystem.md §C.2 shape 1, §C.5 item 2).

Every (run dir, arch, seed) is one job writing ``RUN_DIR/eval/<arch>/seed<k>.json`` (and, with the
same-size random-subset baseline, ``baseline-seed<k>.json``) atomically; each file carries a key (sha256 of
the one-seed protocol, the synthetic set's file hash and the dataset), so a finished seed is skipped on resume
and a seed evaluated under another protocol or for another set is redone. After all ranks finish, rank 0
assembles ``results.json`` / ``results.<arch>.json`` exactly as the one-process evaluation always wrote them:
the per-seed numbers are the same floats (every seed reseeds itself), aggregated in seed order.

``mmdistill evaluate`` (:func:`mmdistill.runs.evaluate_run`, :func:`~mmdistill.runs.evaluate_full`) goes
through here with a world of one; ``mmdistill sweep`` under ``torchrun`` splits the jobs across ranks.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import apply_overrides
from ..data import load_dataset
from ..data.paired import PairedDataset
from ..evaluate.protocol import Protocol, default_protocol, evaluate_random_baseline, evaluate_real, evaluate_set
from ..errors import ConfigError, IntegrityError
from ..evaluate.results import SET_FILE, Results, aggregate
from ..io import sha256_file
from .jobs import Job, JobReport, json_job, read_json, run_jobs

EVAL_DIR = "eval"
_HEAD = ("dataset", "method", "budget", "protocol", "metrics")


def results_name(arch: str | None, task: str | None = None) -> str:
    """``results.json`` for the default architecture, ``results.<arch>.json`` for a cross-architecture one;
    audio–visual retrieval (``task="av-retrieval"``) writes ``results.retrieval.json`` / ``results.retrieval.<arch>.json``."""
    stem = "results.retrieval" if task == "av-retrieval" else "results"
    return f"{stem}.json" if not arch else f"{stem}.{arch}.json"


def cell_protocol(requested: str | None, data_task: str, arch: str | None, fields: dict[str, Any]) -> Protocol:
    """The protocol of an evaluation cell: the dataset's own task (default), or ``requested``.

    ``"retrieval"`` on an audio–visual (classification) dataset is the audio–visual retrieval protocol
    (:mod:`mmdistill.evaluate.av_retrieval`); ``fields`` are that protocol's (callers keep only ``seeds`` of a
    run's classification fields)."""
    if requested in (None, data_task):
        return default_protocol(data_task, arch=arch, **fields)
    if requested == "retrieval" and data_task == "classification":
        return default_protocol("av-retrieval", arch=arch, **fields)
    raise ConfigError(f"evaluation task {requested!r} does not apply to a {data_task} dataset "
                      f"(choose {data_task!r}{', or retrieval for an audio-visual set' if data_task == 'classification' else ''})")


class _Datasets:
    """Loads each (dataset, split, params) once per process."""

    def __init__(self, data_root: str | None) -> None:
        self.data_root = data_root
        self._cache: dict[str, PairedDataset] = {}

    def get(self, name: str, split: str, params: dict[str, Any]) -> PairedDataset:
        k = json.dumps([name, split, params], sort_keys=True, default=str)
        if k not in self._cache:
            self._cache[k] = load_dataset(name, split, self.data_root, **params)
        return self._cache[k]


@dataclass
class EvalCell:
    """One (target, arch): a run directory's synthetic set, or (``run_dir=None``) a dataset's full training set."""

    out_dir: Path
    arch: str | None
    dataset: str
    data: dict[str, Any]
    proto: Protocol
    datasets: _Datasets
    run_dir: Path | None = None
    device: str = "cpu"
    baseline: bool = True
    set_sha: str | None = None
    _syn: Any = field(default=None, repr=False)

    @property
    def arch_name(self) -> str:
        return self.arch or str(getattr(self.proto, "arch", None) or getattr(self.proto, "image_arch"))

    @property
    def task(self) -> str | None:
        """"av-retrieval" for the audio–visual retrieval protocol, else None (the dataset's own task)."""
        from ..evaluate.av_retrieval import AVRetrievalProtocol

        return "av-retrieval" if isinstance(self.proto, AVRetrievalProtocol) else None

    @property
    def results_path(self) -> Path:
        return self.out_dir / results_name(self.arch, self.task)

    def seed_path(self, seed: int, kind: str = "seed") -> Path:
        sub = f"retrieval-{self.arch_name}" if self.task else self.arch_name
        return self.out_dir / EVAL_DIR / sub / f"{kind}{seed}.json"

    def key(self, seed: int, kind: str) -> str:
        one = replace(self.proto, seeds=[seed])
        blob = json.dumps({"kind": kind, "protocol": asdict(one), "type": type(one).__name__, "set": self.set_sha,
                           "dataset": self.dataset, "data": self.data, "v": 1}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    # ------------------------------------------------------------------ the job bodies (one seed each)
    def _load(self):
        train = self.datasets.get(self.dataset, "train", self.data)
        test = self.datasets.get(self.dataset, "test", self.data)
        if self.run_dir is not None and self._syn is None:
            from ..synth import SyntheticSet

            self._syn = SyntheticSet.load(self.run_dir)
        return self._syn, train, test

    def eval_seed(self, seed: int) -> dict[str, Any]:
        syn, train, test = self._load()
        one = replace(self.proto, seeds=[seed])
        res = (evaluate_set(syn, train, test, one, device=self.device) if syn is not None
               else evaluate_real(train, test, one, device=self.device))
        d = res.as_dict()
        return {"seed": seed, "values": {k: v["per_seed"][0] for k, v in res.metrics.items()},
                "head": {k: d[k] for k in ("dataset", "method", "budget")},
                "extra": {k: v for k, v in d.items() if k not in _HEAD}}

    def eval_baseline_seed(self, seed: int) -> dict[str, Any]:
        syn, train, test = self._load()
        base = evaluate_random_baseline(syn, train, test, replace(self.proto, seeds=[seed]), device=self.device)
        return {"seed": seed, "values": {k: v["per_seed"][0] for k, v in base.metrics.items()}, "budget": base.budget,
                "wall_s": base.extra["eval_wall_s"]}

    def jobs(self) -> list[Job]:
        tag = f"{self.out_dir}:{self.arch_name}"
        out = [json_job(f"{tag}:seed{s}", self.seed_path(s), lambda s=s: self.eval_seed(s), self.key(s, "seed"))
               for s in self.proto.seeds]
        if self.baseline and self.run_dir is not None:
            out += [json_job(f"{tag}:baseline{s}", self.seed_path(s, "baseline-seed"),
                             lambda s=s: self.eval_baseline_seed(s), self.key(s, "baseline")) for s in self.proto.seeds]
        return out

    # ------------------------------------------------------------------ assembly (rank 0, after every job)
    def assemble(self) -> Results:
        """results.json from the per-seed files, in seed order (same floats as one process computing all seeds)."""
        recs = [read_json(self.seed_path(s)) for s in self.proto.seeds]
        if any(r is None for r in recs):
            missing = [str(self.seed_path(s)) for s, r in zip(self.proto.seeds, recs) if r is None]
            raise FileNotFoundError(f"evaluation sweep: per-seed result(s) missing: {', '.join(missing)}")
        first = recs[0]
        extra = dict(first["extra"])  # type: ignore[index]
        extra["eval_wall_s"] = sum(float(r["extra"]["eval_wall_s"]) for r in recs)  # type: ignore[index]
        res = Results(**first["head"], protocol=self.proto.describe(int(extra["n_train_pairs"])),  # type: ignore[index]
                      metrics=aggregate([r["values"] for r in recs]), extra=extra)  # type: ignore[index]
        if self.baseline and self.run_dir is not None:
            base = [read_json(self.seed_path(s, "baseline-seed")) for s in self.proto.seeds]
            res.extra["random_subset_same_size"] = {"metrics": aggregate([b["values"] for b in base]),  # type: ignore[index]
                                                    "budget": base[0]["budget"]}  # type: ignore[index]
        res.extra["eval_arch"] = self.arch_name
        if self.run_dir is not None:  # tie the results to the set they evaluated (report/compare check it)
            now = sha256_file(self.run_dir / SET_FILE) if (self.run_dir / SET_FILE).is_file() else None
            if now != self.set_sha:
                raise IntegrityError(f"{self.run_dir / SET_FILE}: the synthetic set changed while it was evaluated "
                                     f"(sha256 {str(self.set_sha)[:12]}… at the start, {str(now)[:12]}… now); "
                                     "evaluate again")
            res.extra["set_sha256"] = self.set_sha
        res.save(self.results_path)
        return res


def run_cell(run_dir: str | Path, *, arch: str | None = None, seeds: list[int] | None = None,
             overrides: list[str] | None = None, baseline: bool = True, datasets: _Datasets | None = None,
             data_root: str | None = None, task: str | None = None) -> EvalCell:
    """The evaluation cell of a run directory under its config's ``eval`` fields, ``overrides`` and ``seeds``
    (``task``: see :func:`cell_protocol`)."""
    from ..runs import load_run_config

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    datasets = datasets or _Datasets(data_root)
    man = read_json(run_dir / "manifest.json") or {}
    data_task = (man.get("meta") or {}).get("task") or datasets.get(cfg.dataset or "", "train", cfg.data).task
    fields = dict(cfg.eval)
    if task not in (None, data_task):  # another protocol: only the run's seeds carry over
        fields = {k: v for k, v in fields.items() if k == "seeds"}
    fields = apply_overrides(fields, overrides or [])
    if seeds is not None:  # --seeds beats the run config's eval.seeds
        fields["seeds"] = list(seeds)
    proto = cell_protocol(task, data_task, arch, fields)
    sha = sha256_file(run_dir / "synthetic.safetensors") if (run_dir / "synthetic.safetensors").is_file() else None
    return EvalCell(out_dir=run_dir, arch=arch, dataset=cfg.dataset or "", data=dict(cfg.data), proto=proto,
                    datasets=datasets, run_dir=run_dir, device=cfg.device, baseline=baseline, set_sha=sha)


def full_cell(dataset: str, out: str | Path, *, data: dict[str, Any] | None = None, arch: str | None = None,
              seeds: list[int] | None = None, overrides: list[str] | None = None, datasets: _Datasets | None = None,
              data_root: str | None = None, task: str | None = None) -> EvalCell:
    """The evaluation cell of the full real training set (the upper bound), written under ``out``
    (``task``: see :func:`cell_protocol`)."""
    datasets = datasets or _Datasets(data_root)
    fields = apply_overrides({}, overrides or [])
    if seeds is not None:
        fields["seeds"] = list(seeds)
    data_task = datasets.get(dataset, "train", dict(data or {})).task
    proto = cell_protocol(task, data_task, arch, fields)
    return EvalCell(out_dir=Path(out), arch=arch, dataset=dataset, data=dict(data or {}), proto=proto, datasets=datasets,
                    baseline=False)


def run_cells_report(cells: list[EvalCell], desc: str = "evaluation sweep") -> JobReport[list[Results]]:
    """Run every cell's seed jobs (split over the ranks, finished ones skipped), then assemble each cell on rank 0;
    the report's ``value`` is the Results in cell order, ``ran``/``skipped`` the job ids over all ranks."""
    for c in cells:
        c.out_dir.mkdir(parents=True, exist_ok=True)
    jobs = list({j.id: j for c in cells for j in c.jobs()}.values())  # e.g. arch None and its explicit name share seeds
    return run_jobs(jobs, lambda: [c.assemble() for c in cells], desc=desc)


def run_cells(cells: list[EvalCell], desc: str = "evaluation sweep") -> list[Results]:
    """:func:`run_cells_report`'s Results."""
    return run_cells_report(cells, desc).value or []


def sweep_report(run_dirs: list[str | Path], archs: list[str | None] | None = None, *, seeds: list[int] | None = None,
                 overrides: list[str] | None = None, baseline: bool = True,
                 data_root: str | None = None) -> JobReport[list[Results]]:
    """Evaluate run directories × archs × seeds as one job list (Results in (run dir, arch) order + the job report)."""
    datasets = _Datasets(data_root)
    cells = [run_cell(r, arch=a, seeds=seeds, overrides=overrides, baseline=baseline, datasets=datasets)
             for r in run_dirs for a in (archs or [None])]
    return run_cells_report(cells)


def sweep(run_dirs: list[str | Path], archs: list[str | None] | None = None, *, seeds: list[int] | None = None,
          overrides: list[str] | None = None, baseline: bool = True, data_root: str | None = None) -> list[Results]:
    """:func:`sweep_report`'s Results."""
    return sweep_report(run_dirs, archs, seeds=seeds, overrides=overrides, baseline=baseline, data_root=data_root).value or []
