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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import apply_overrides, from_dict, load_yaml
from .data import load_dataset
from .distill import Budget, get_method, run
from .errors import ConfigError
from .evaluate.protocol import default_protocol, evaluate_random_baseline, evaluate_real, evaluate_set
from .evaluate.results import Results
from .io import atomic_write_text
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
            progress: bool = True, stop_after: int | None = None) -> tuple[Path, SyntheticSet]:
    method_cls = get_method(cfg.method or "")
    method_cfg = from_dict(method_cls.Config, cfg.params, where="config.params")
    run_dir = Path(out) if out else default_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    train = load_dataset(cfg.dataset or "", "train", data_root, **cfg.data)
    resolved = dataclasses.asdict(cfg)
    resolved["params"] = dataclasses.asdict(method_cfg)
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
    distiller = method_cls(method_cfg, train, cfg.budget(), cfg.seed, device=cfg.device)
    eval_fn = None
    if cfg.run.eval_every:
        test = load_dataset(cfg.dataset or "", "test", data_root, **cfg.data)
        proto = default_protocol(train.task, **{**cfg.eval, "seeds": [cfg.seed]})

        def periodic_eval(syn: SyntheticSet) -> dict[str, float]:
            r = evaluate_set(syn, train, test, proto, device=cfg.device)
            return {k: v["mean"] for k, v in r.metrics.items()}

        eval_fn = periodic_eval
    syn = run(distiller, run_dir, checkpoint_every=cfg.run.checkpoint_every, eval_every=cfg.run.eval_every,
              evaluate_fn=eval_fn, resume=resume, progress=progress, stop_after=stop_after)
    return run_dir, syn


def load_run_config(run_dir: str | Path) -> RunConfig:
    p = Path(run_dir) / "config.yaml"
    if not p.is_file():
        raise ConfigError(f"{p}: not a run directory (config.yaml missing)")
    data = load_yaml(p)
    data.pop("params", None)  # method params are not needed to evaluate
    return from_dict(RunConfig, data, where=str(p))


def results_name(arch: str | None) -> str:
    return "results.json" if not arch else f"results.{arch}.json"


def evaluate_run(run_dir: str | Path, *, arch: str | None = None, seeds: list[int] | None = None,
                 overrides: list[str] | None = None, baseline: bool = True, data_root: str | None = None) -> Results:
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    syn = SyntheticSet.load(run_dir)
    train = load_dataset(cfg.dataset or "", "train", data_root, **cfg.data)
    test = load_dataset(cfg.dataset or "", "test", data_root, **cfg.data)
    eval_fields = apply_overrides(dict(cfg.eval), overrides or [])
    if seeds is not None:  # --seeds beats the run config's eval.seeds
        eval_fields["seeds"] = list(seeds)
    proto = default_protocol(train.task, arch=arch, **eval_fields)
    res = evaluate_set(syn, train, test, proto, device=cfg.device)
    if baseline:
        base = evaluate_random_baseline(syn, train, test, proto, device=cfg.device)
        res.extra["random_subset_same_size"] = {"metrics": base.metrics, "budget": base.budget}
    res.extra["eval_arch"] = arch or (proto.arch if hasattr(proto, "arch") else proto.image_arch)
    res.save(run_dir / results_name(arch))
    return res


def evaluate_full(dataset: str, out: str | Path, *, data: dict[str, Any] | None = None, arch: str | None = None,
                  seeds: list[int] | None = None, overrides: list[str] | None = None, data_root: str | None = None) -> Results:
    train = load_dataset(dataset, "train", data_root, **(data or {}))
    test = load_dataset(dataset, "test", data_root, **(data or {}))
    fields = apply_overrides({}, overrides or [])
    if seeds is not None:
        fields["seeds"] = list(seeds)
    proto = default_protocol(train.task, arch=arch, **fields)
    res = evaluate_real(train, test, proto)
    res.extra["eval_arch"] = arch or (proto.arch if hasattr(proto, "arch") else proto.image_arch)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    res.save(out / results_name(arch))
    return res
