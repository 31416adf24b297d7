"""The Python API behind the CLI: distill into a run directory, evaluate a run directory.

A run directory holds ``config.yaml`` (resolved), ``log.jsonl``,
``checkpoint/``, ``synthetic.safetensors`` + ``manifest.json`` and ``results*.json``.

Run config file (YAML)::

    method: herding            # CLI --method overrides
    dataset: emoji             # CLI --dataset overrides
    pairs: 100                 # or ipc: 10 (CLI --pairs/--ipc override)
    seed: 0
    data: {image_size: 32}     # dataset loader params
    params: {proxy: {epochs: 6}}   # the method's config dataclass
    eval: {seeds: [0, 1, 2]}   # evaluation protocol fields
    run: {checkpoint_every: 50, eval_every: 0}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from .config import apply_overrides, from_dict, load_yaml
from .data import load_dataset
from .data.paired import PairedDataset
from .parallel.context import barrier, context as dist_context, init_from_env
from .parallel.jobs import Job, JobReport, json_job, read_json, run_jobs
from .distill import Budget, get_method, run
from .distill.base import CHECKPOINT, LOG
from .errors import ConfigError, IntegrityError, RunInterrupted
from .evaluate.protocol import (Protocol, default_protocol, evaluate_random_baseline, evaluate_real,
                                evaluate_set)
from .evaluate.results import SET_FILE, Results, aggregate
from .io import append_jsonl, atomic_write_text, sha256_file
from .rundir import check_fresh, clear_run, config_changes
from .synth import SyntheticSet


@dataclass
class RunSection:
    """Run-loop settings. ``eval_every`` > 0 evaluates the current set every so many iterations on
    ``eval_split`` (logged as ``<split>_<metric>``): ``val`` (needs ``data.val_fraction`` > 0), the split to draw
    validation curves and choose run lengths on; ``test`` only to watch a run, never to choose anything."""

    checkpoint_every: int = 50
    eval_every: int = 0
    eval_split: Literal["val", "test"] = "val"


@dataclass
class RunConfig:
    method: str | None = None
    dataset: str | None = None
    ipc: int | None = None
    pairs: int | None = None
    seed: int = 0
    device: str = "cpu"
    data: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    run: RunSection = field(default_factory=RunSection)
    changes: list[dict[str, Any]] = field(default_factory=list)  # iteration count / lr changes made on resume

    def budget(self) -> Budget:
        if (self.ipc is None) == (self.pairs is None):
            raise ConfigError("give exactly one budget: --ipc N (per class) or --pairs N")
        return Budget(self.ipc, "ipc") if self.ipc is not None else Budget(int(self.pairs), "pairs")  # type: ignore[arg-type]


def resolve_run_config(config: str | Path | None = None, overrides: list[str] | None = None, **cli: Any) -> RunConfig:
    data: dict[str, Any] = load_yaml(config) if config else {}
    for k, v in cli.items():
        if v is not None:
            data[k] = v
    if cli.get("ipc") is not None:
        data.pop("pairs", None)
    if cli.get("pairs") is not None:
        data.pop("ipc", None)
    data = apply_overrides(data, overrides or [])
    cfg = from_dict(RunConfig, data, where=str(config) if config else "run config")
    if not cfg.method:
        raise ConfigError("no method given (--method or 'method:' in the config)")
    if not cfg.dataset:
        raise ConfigError("no dataset given (--dataset or 'dataset:' in the config)")
    cfg.budget()
    return cfg


def default_run_dir(cfg: RunConfig) -> Path:
    b = cfg.budget()
    return Path("runs") / f"{cfg.method}-{cfg.dataset}-{b.value}{b.unit}-s{cfg.seed}"


def distill(cfg: RunConfig, out: str | Path | None = None, *, data_root: str | None = None, resume: bool = False,
            overwrite: bool = False, progress: bool = True, stop_after: int | None = None) -> tuple[Path, SyntheticSet]:
    """Distil ``cfg`` into a run directory (``out`` or :func:`default_run_dir`).

    A new run refuses a non-empty directory unless ``overwrite`` (which removes the old run's artefacts first).
    ``resume`` continues from the directory's checkpoint; its config must describe the same set
    (:func:`mmdistill.rundir.config_changes`): a changed iteration count or learning rate is recorded under
    ``changes:`` in ``config.yaml`` and in the log, with the iteration it takes effect at. A run that fails or is
    interrupted before its first checkpoint leaves no run directory behind.
    """
    init_from_env(cfg.device)  # under torchrun: join the group (DM/AVDD shard classes; rank 0 writes)
    method_cls = get_method(cfg.method or "")
    method_cfg = from_dict(method_cls.Config, cfg.params, where="config.params")
    run_dir = Path(out) if out else default_run_dir(cfg)
    resolved = dataclasses.asdict(cfg)
    resolved["params"] = dataclasses.asdict(method_cfg)
    resolved["changes"] = []
    changes: dict[str, tuple[Any, Any]] = {}
    cfg_path = run_dir / "config.yaml"
    if resume and cfg_path.is_file():
        old = load_yaml(cfg_path)
        changes = config_changes(old, resolved, where=f"run in {run_dir}")
        resolved["changes"] = list(old.get("changes") or [])
    else:
        check_fresh(run_dir, overwrite)
        barrier()  # every rank checked before rank 0 clears
        if dist_context().is_main:
            clear_run(run_dir)
    train = load_dataset(cfg.dataset or "", "train", data_root, **cfg.data)
    distiller = method_cls(method_cfg, train, cfg.budget(), cfg.seed, device=cfg.device)
    eval_fn = None
    if cfg.run.eval_every:
        split = cfg.run.eval_split
        if split == "val" and not cfg.data.get("val_fraction"):
            raise ConfigError("run.eval_every > 0 evaluates on the val split, which needs data.val_fraction > 0 "
                              "(e.g. --set data.val_fraction=0.2: the set is then distilled from the rest of train); "
                              "run.eval_split=test only watches test and must not choose anything")
        held_out = load_dataset(cfg.dataset or "", split, data_root, **cfg.data)
        proto = default_protocol(train.task, **{**cfg.eval, "seeds": [cfg.seed]})

        def periodic_eval(syn: SyntheticSet) -> dict[str, float]:
            r = evaluate_set(syn, train, held_out, proto, device=cfg.device)
            return {f"{split}_{k}": v["mean"] for k, v in r.metrics.items()}

        eval_fn = periodic_eval

    def record_changes(k: int) -> None:
        if changes:
            entry = {"it": k, **{key: {"old": a, "new": b} for key, (a, b) in changes.items()}}
            resolved["changes"].append(entry)
            append_jsonl(run_dir / LOG, {"event": "change", **entry})
        atomic_write_text(cfg_path, yaml.safe_dump(resolved, sort_keys=False))
        if changes and progress:
            print(f"resume at iteration {k} with changes: "
                  + ", ".join(f"{key} {a} -> {b}" for key, (a, b) in changes.items()), file=sys.stderr)

    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / CHECKPOINT
    had_ckpt = ckpt.is_file()
    if not (resume and had_ckpt):  # a resumed run rewrites it (with its changes) once the checkpoint is restored
        atomic_write_text(cfg_path, yaml.safe_dump(resolved, sort_keys=False))
    try:
        syn = run(distiller, run_dir, checkpoint_every=cfg.run.checkpoint_every, eval_every=cfg.run.eval_every,
                  evaluate_fn=eval_fn, resume=resume, progress=progress, stop_after=stop_after,
                  on_resume=record_changes)
    except BaseException as e:
        saved = ckpt.is_file()
        if not saved and not had_ckpt:
            _discard(run_dir, created)
        if isinstance(e, KeyboardInterrupt):
            if saved:
                raise RunInterrupted(f"interrupted; the last checkpoint {ckpt} is kept: continue with "
                                     f"`mmdistill distill --resume --out {run_dir}`") from None
            raise RunInterrupted("interrupted before the first checkpoint: nothing was saved") from None
        raise
    return run_dir, syn


def _discard(run_dir: Path, created: bool) -> None:
    """Remove what a failed fresh run wrote (the whole directory if this run created it)."""
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        clear_run(run_dir)


def load_run_config(run_dir: str | Path) -> RunConfig:
    p = Path(run_dir) / "config.yaml"
    if not p.is_file():
        raise ConfigError(f"{p}: not a run directory (config.yaml missing)")
    data = load_yaml(p)
    data.pop("params", None)  # method params are not needed to evaluate
    return from_dict(RunConfig, data, where=str(p))


def evaluate_run(run_dir: str | Path, *, arch: str | None = None, seeds: list[int] | None = None,
                 overrides: list[str] | None = None, baseline: bool = True, data_root: str | None = None,
                 task: str | None = None) -> Results:
    """Evaluate a run directory: one job per seed (``RUN_DIR/eval/<arch>/seed<k>.json``, resumable), assembled
    into ``results.json`` / ``results.<arch>.json`` (:class:`EvalCell`; under torchrun split over ranks).
    ``task="retrieval"`` on an audio–visual run: audio–visual retrieval into ``results.retrieval.json``."""
    return run_eval_cells([eval_cell(run_dir, arch=arch, seeds=seeds, overrides=overrides, baseline=baseline,
                                     data_root=data_root, task=task)])[0]


def evaluate_full(dataset: str, out: str | Path, *, data: dict[str, Any] | None = None, arch: str | None = None,
                  seeds: list[int] | None = None, overrides: list[str] | None = None, data_root: str | None = None,
                  task: str | None = None) -> Results:
    """Evaluate the full training set (upper bound) into ``out``, one job per seed like :func:`evaluate_run`."""
    return run_eval_cells([full_eval_cell(dataset, out, data=data, arch=arch, seeds=seeds, overrides=overrides,
                                          data_root=data_root, task=task)])[0]


# ------------------------------------------------------------------------------------------------------------------
# Run-directory evaluation as a job list: run directories x evaluation archs x seeds.
#
# Every (run dir, arch, seed) is one job writing ``RUN_DIR/eval/<arch>/seed<k>.json`` (and, with the same-size
# random-subset baseline, ``baseline-seed<k>.json``) atomically; each file carries a key (sha256 of the one-seed
# protocol, the synthetic set's file hash and the dataset), so a finished seed is skipped on resume and a seed
# evaluated under another protocol or for another set is redone. After all ranks finish, rank 0 assembles
# ``results.json`` / ``results.<arch>.json``: the per-seed numbers are the same floats as one process computing
# every seed (each seed reseeds itself), aggregated in seed order. ``mmdistill evaluate`` goes through here with a
# world of one; ``mmdistill sweep`` under ``torchrun`` splits the jobs across ranks.

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
        from .evaluate.av_retrieval import AVRetrievalProtocol

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


def eval_cell(run_dir: str | Path, *, arch: str | None = None, seeds: list[int] | None = None,
              overrides: list[str] | None = None, baseline: bool = True, datasets: _Datasets | None = None,
              data_root: str | None = None, task: str | None = None) -> EvalCell:
    """The evaluation cell of a run directory under its config's ``eval`` fields, ``overrides`` and ``seeds``
    (``task``: see :func:`cell_protocol`)."""
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


def full_eval_cell(dataset: str, out: str | Path, *, data: dict[str, Any] | None = None, arch: str | None = None,
                   seeds: list[int] | None = None, overrides: list[str] | None = None,
                   datasets: _Datasets | None = None, data_root: str | None = None,
                   task: str | None = None) -> EvalCell:
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


def run_eval_cells_report(cells: list[EvalCell], desc: str = "evaluation sweep") -> JobReport[list[Results]]:
    """Run every cell's seed jobs (split over the ranks, finished ones skipped), then assemble each cell on rank 0;
    the report's ``value`` is the Results in cell order, ``ran``/``skipped`` the job ids over all ranks."""
    for c in cells:
        c.out_dir.mkdir(parents=True, exist_ok=True)
    jobs = list({j.id: j for c in cells for j in c.jobs()}.values())  # e.g. arch None and its explicit name share seeds
    return run_jobs(jobs, lambda: [c.assemble() for c in cells], desc=desc)


def run_eval_cells(cells: list[EvalCell], desc: str = "evaluation sweep") -> list[Results]:
    """:func:`run_eval_cells_report`'s Results."""
    return run_eval_cells_report(cells, desc).value or []


def sweep_report(run_dirs: list[str | Path], archs: list[str | None] | None = None, *, seeds: list[int] | None = None,
                 overrides: list[str] | None = None, baseline: bool = True,
                 data_root: str | None = None) -> JobReport[list[Results]]:
    """Evaluate run directories × archs × seeds as one job list (Results in (run dir, arch) order + the job report)."""
    datasets = _Datasets(data_root)
    cells = [eval_cell(r, arch=a, seeds=seeds, overrides=overrides, baseline=baseline, datasets=datasets)
             for r in run_dirs for a in (archs or [None])]
    return run_eval_cells_report(cells)


def sweep(run_dirs: list[str | Path], archs: list[str | None] | None = None, *, seeds: list[int] | None = None,
          overrides: list[str] | None = None, baseline: bool = True, data_root: str | None = None) -> list[Results]:
    """:func:`sweep_report`'s Results."""
    return sweep_report(run_dirs, archs, seeds=seeds, overrides=overrides, baseline=baseline, data_root=data_root).value or []
