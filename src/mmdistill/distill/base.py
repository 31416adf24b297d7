"""The one run loop every method shares .

A method is a :class:`Distiller`: ``init()`` builds its state, ``step(it)`` does one outer
iteration and returns floats to log, ``export()`` returns the :class:`SyntheticSet`, and
``state_dict()/load_state_dict()`` capture everything a resume needs (learned tensors, optimiser,
EMA banks, ...). :func:`run` adds the progress bar, JSONL log, periodic evaluation, atomic
checkpoints, exact resume after a kill, and NaN/inf detection.

Exact resume: before ``step(it)`` the global RNGs are reseeded from ``(seed, it)``, so an iteration's
randomness depends only on the seed and its index, never on what ran before in this process.
"""

from __future__ import annotations

import json
import math
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

import torch
from tqdm import tqdm

from ..data.paired import PairedDataset
from ..parallel.context import barrier, context as dist_context
from ..errors import ConfigError, DivergenceError, IntegrityError
from ..io import append_jsonl, atomic_write_with, remove_stale_temps
from ..registry import Registry
from ..seed import derive_seed, seed_everything
from ..synth import SyntheticSet

CHECKPOINT = "checkpoint/state.pt"
LOG = "log.jsonl"


@dataclass(frozen=True)
class Budget:
    value: int
    unit: Literal["ipc", "pairs"]

    def __post_init__(self) -> None:
        if self.value < 1:
            raise ConfigError(f"budget must be >= 1 {self.unit}, got {self.value}")

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit}


class Distiller(ABC):
    """Base class of every method (coresets included; they have ``iterations == 0``)."""

    name: ClassVar[str]
    Config: ClassVar[type]
    budget_units: ClassVar[tuple[str, ...]] = ("ipc", "pairs")

    def __init__(self, cfg: Any, dataset: PairedDataset, budget: Budget, seed: int, device: str = "cpu") -> None:
        if budget.unit not in self.budget_units:
            raise ConfigError(f"method {self.name!r} takes budgets in {self.budget_units}, got {budget.unit!r}")
        if budget.unit == "ipc" and dataset.labels is None:
            raise ConfigError(f"--ipc needs a labelled dataset; {dataset.name!r} has no labels (use --pairs)")
        if budget.unit == "ipc":
            lab = dataset.pair_labels()
            counts = torch.bincount(lab, minlength=dataset.num_classes or 0)
            smallest = int(counts.min())
            if budget.value > smallest:
                c = int(counts.argmin())
                raise ConfigError(
                    f"--ipc {budget.value} is larger than class {c} of {dataset.name!r} holds ({smallest} pairs)"
                )
        if budget.unit == "pairs" and budget.value > len(dataset):
            raise ConfigError(f"--pairs {budget.value} exceeds the {len(dataset)} training pairs of {dataset.name!r}")
        self.cfg = cfg
        self.dataset = dataset
        self.budget = budget
        self.seed = seed
        self.device = torch.device(device)

    @property
    def iterations(self) -> int:
        return int(getattr(self.cfg, "iterations", 0))

    @abstractmethod
    def init(self) -> None: ...

    def step(self, it: int) -> dict[str, float]:  # pragma: no cover - iterative methods override
        raise NotImplementedError

    @abstractmethod
    def export(self) -> SyntheticSet: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def base_meta(self) -> dict[str, Any]:
        from dataclasses import asdict, is_dataclass

        return {
            "method": self.name,
            "dataset": self.dataset.name,
            "dataset_params": self.dataset.meta.get("params", {}),
            "task": self.dataset.task,
            "budget": self.budget.as_dict(),
            "seed": self.seed,
            "config": asdict(self.cfg) if is_dataclass(self.cfg) else {},
            "floats_per_pair": self.dataset.floats_per_pair(),
            "class_names": self.dataset.class_names,
        }


METHODS: Registry[type[Distiller]] = Registry("method")


def restore_optimizer(opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load an optimiser checkpoint but keep the hyper-parameters the optimiser was built with (from the config).

    Momentum buffers come from the checkpoint; lr, momentum etc. from the current config, so "lower the learning
    rate and --resume" after a divergence takes effect. An unchanged config gives the same values: resume stays exact.
    """
    hyper = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
    opt.load_state_dict(state)
    for g, h in zip(opt.param_groups, hyper):
        g.update(h)


def _rng_state() -> dict[str, Any]:
    import random

    import numpy as np

    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(s: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(s["torch"])
    np.random.set_state(s["numpy"])
    random.setstate(s["python"])


def _last_good(run_dir: Path) -> str:
    ckpt = run_dir / CHECKPOINT
    if ckpt.is_file():
        return f"The last good checkpoint is {ckpt} (resume with --resume after lowering the learning rate)."
    return "No checkpoint was written yet; rerun after lowering the learning rate."


def _check_finite(logs: dict[str, float], it: int, run_dir: Path) -> None:
    bad = [k for k, v in logs.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise DivergenceError(f"iteration {it}: {', '.join(bad)} became NaN/inf; stopped. {_last_good(run_dir)}")


def _nonfinite_state(obj: Any, prefix: str = "") -> list[str]:
    """Names of the floating tensors in a (nested) state dict holding NaN/inf."""
    if isinstance(obj, torch.Tensor):
        return [prefix or "state"] if (obj.is_floating_point() or obj.is_complex()) and not torch.isfinite(obj).all() else []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    return [n for k, v in items for n in _nonfinite_state(v, f"{prefix}.{k}" if prefix else str(k))]


def _load_checkpoint(path: Path, distiller: Distiller) -> dict[str, Any]:
    """Restore ``distiller`` and the RNGs from ``path``; a corrupt or foreign checkpoint raises IntegrityError naming it."""
    try:
        state = torch.load(path, weights_only=False)
        nxt = state.get("next_it") if isinstance(state, dict) else None
        if not isinstance(nxt, int) or not 0 <= nxt <= distiller.iterations:
            raise ValueError(f"field 'next_it' is {nxt!r}, expected an iteration in 0..{distiller.iterations}")
        distiller.load_state_dict(state["distiller"])
        _set_rng_state(state["rng"])
    except Exception as e:  # unpickling, zip and key errors have no common base class
        raise IntegrityError(f"{path}: unreadable or incompatible checkpoint ({type(e).__name__}: {e}); "
                             "delete it to restart the run from scratch") from None
    return state


def _truncate_log(path: Path, last_it: int) -> None:
    """Drop log lines written after the checkpoint we resume from (they will be redone)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from a kill
        if rec.get("it", -1) <= last_it or rec.get("event") == "start":
            keep.append(line)
    from ..io import atomic_write_text

    atomic_write_text(path, "".join(l + "\n" for l in keep))


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def eta_line(name: str, s_per_iter: float, total: int, left: int) -> str:
    """One line: the measured time per iteration and the estimated total / remaining time."""
    return (f"{name}: {s_per_iter:.2f} s/iteration -> estimated total {_duration(s_per_iter * total)} for {total} "
            f"iterations ({_duration(s_per_iter * left)} left); a shorter run: --set params.iterations=N")


def run(
    distiller: Distiller,
    run_dir: str | Path,
    *,
    checkpoint_every: int = 50,
    eval_every: int = 0,
    evaluate_fn: Callable[[SyntheticSet], dict[str, float]] | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    on_resume: Callable[[int], None] | None = None,
    eta_after: int = 3,
) -> SyntheticSet:
    """Run ``distiller`` to completion in ``run_dir`` and save its SyntheticSet there.

    ``stop_after`` (tests): return after that many iterations without finishing, as a kill would.
    ``on_resume(k)`` is called (main rank) after a checkpoint is restored, ``k`` being the first iteration run.
    With ``progress``, the estimated total time is printed to stderr after ``eta_after`` iterations.
    With ``evaluate_fn`` and ``eval_every`` > 0 the set is evaluated before the first iteration (in the ``start``
    event of a fresh run), after every ``eval_every`` iterations and once more when it is saved (``done`` event):
    a validation curve from the start to the end.
    Under ``torchrun`` every rank runs the loop (a method may shard its work, e.g. DM by class) and only
    rank 0 writes the log, checkpoints, periodic evaluations and the set.
    """
    main = dist_context().is_main
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / LOG
    ckpt_path = run_dir / CHECKPOINT
    seed_everything(derive_seed(distiller.seed, "init"))
    distiller.init()
    start = 0
    if main:  # temp files of checkpoint/log writes a kill interrupted (ignored by every loader, but they pile up)
        for p in (ckpt_path, log_path, run_dir / "synthetic.safetensors", run_dir / "manifest.json"):
            remove_stale_temps(p)
    if resume and ckpt_path.is_file():
        state = _load_checkpoint(ckpt_path, distiller)
        start = int(state["next_it"])
        if main:
            _truncate_log(log_path, start - 1)
            append_jsonl(log_path, {"event": "resume", "it": start - 1, "time": time.time()})
            if on_resume is not None:
                on_resume(start)
    elif main:
        if log_path.exists():
            log_path.unlink()
        start_rec: dict[str, Any] = {"event": "start", "it": -1, "method": distiller.name, "time": time.time()}
        if evaluate_fn is not None and eval_every:  # the curve's first point: the set before any iteration
            start_rec["eval"] = evaluate_fn(distiller.export())
        append_jsonl(log_path, start_rec)

    total = distiller.iterations

    def save_ckpt(next_it: int) -> None:
        dstate = distiller.state_dict()
        bad = _nonfinite_state(dstate)
        if bad:  # the logged numbers can be finite while the update itself overflowed: never checkpoint that
            raise DivergenceError(f"iteration {next_it - 1}: state {', '.join(bad[:4])} became NaN/inf; stopped. "
                                  f"{_last_good(run_dir)}")
        state = {"distiller": dstate, "rng": _rng_state(), "next_it": next_it}
        atomic_write_with(ckpt_path, lambda p: torch.save(state, p))

    bar = tqdm(range(start, total), initial=start, total=total, desc=f"{distiller.name}", disable=not progress or total == 0 or not main,
               dynamic_ncols=True, leave=False)
    done = 0
    t_loop = time.perf_counter()
    for it in bar:
        seed_everything(derive_seed(distiller.seed, "iter", it))
        t0 = time.perf_counter()
        logs = distiller.step(it)
        logs = {k: float(v) for k, v in logs.items()}
        _check_finite(logs, it, run_dir)
        rec: dict[str, Any] = {"it": it, "s_per_iter": time.perf_counter() - t0, **logs}
        if main and evaluate_fn is not None and eval_every and ((it + 1) % eval_every == 0) and it + 1 < total:
            rec["eval"] = evaluate_fn(distiller.export())
        if main:
            append_jsonl(log_path, rec)
        bar.set_postfix({k: f"{v:.4g}" for k, v in list(logs.items())[:3]})
        if main and ((it + 1) % checkpoint_every == 0 or it + 1 == total):
            save_ckpt(it + 1)
        done += 1
        if main and progress and done == eta_after and total - start > eta_after:
            tqdm.write(eta_line(distiller.name, (time.perf_counter() - t_loop) / done, total, total - start - done),
                       file=sys.stderr)
        if stop_after is not None and done >= stop_after:
            bar.close()
            return distiller.export()
    bar.close()
    syn = distiller.export()
    syn.validate()
    if main:
        syn.save(run_dir)
        done_rec: dict[str, Any] = {"event": "done", "it": total, "time": time.time()}
        if evaluate_fn is not None and eval_every:  # the curve's last point: the saved set
            done_rec["eval"] = evaluate_fn(syn)
        append_jsonl(log_path, done_rec)
    barrier()  # the set is on disk before any rank returns
    return syn
