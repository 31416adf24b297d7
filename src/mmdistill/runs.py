"""The Python API behind the CLI: distill into a run directory, evaluate a run directory.

A run directory (DESIGN.md "Run directories") holds ``config.yaml`` (resolved), ``log.jsonl``,
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
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import apply_overrides, from_dict, load_yaml
from .data import load_dataset
from .dist.context import barrier, context as dist_context, init_from_env
from .dist.sweep import full_cell, results_name, run_cell, run_cells  # noqa: F401 - results_name re-exported
from .distill import Budget, get_method, run
from .distill.base import CHECKPOINT, LOG
from .errors import ConfigError, RunInterrupted
from .evaluate.protocol import default_protocol, evaluate_set
from .evaluate.results import Results
from .io import append_jsonl, atomic_write_text
from .rundir import check_fresh, clear_run, config_changes
from .synth import SyntheticSet


@dataclass
class RunSection:
    checkpoint_every: int = 50
    eval_every: int = 0


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
        test = load_dataset(cfg.dataset or "", "test", data_root, **cfg.data)
        proto = default_protocol(train.task, **{**cfg.eval, "seeds": [cfg.seed]})

        def periodic_eval(syn: SyntheticSet) -> dict[str, float]:
            r = evaluate_set(syn, train, test, proto, device=cfg.device)
            return {k: v["mean"] for k, v in r.metrics.items()}

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
    into ``results.json`` / ``results.<arch>.json`` (:mod:`mmdistill.dist.sweep`; under torchrun split over ranks).
    ``task="retrieval"`` on an audio–visual run: audio–visual retrieval into ``results.retrieval.json``."""
    return run_cells([run_cell(run_dir, arch=arch, seeds=seeds, overrides=overrides, baseline=baseline,
                               data_root=data_root, task=task)])[0]


def evaluate_full(dataset: str, out: str | Path, *, data: dict[str, Any] | None = None, arch: str | None = None,
                  seeds: list[int] | None = None, overrides: list[str] | None = None, data_root: str | None = None,
                  task: str | None = None) -> Results:
    """Evaluate the full training set (upper bound) into ``out``, one job per seed like :func:`evaluate_run`."""
    return run_cells([full_cell(dataset, out, data=data, arch=arch, seeds=seeds, overrides=overrides,
                                data_root=data_root, task=task)])[0]
