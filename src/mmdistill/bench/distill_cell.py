"""Run one distillation/selection benchmark cell: distil or select its sets, evaluate them, return its rows.

Called in the cell's own process by :mod:`mmdistill.bench.cell` (peak RSS and CPU time are per cell).
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .spec import Cell

METRICS = {
    "classification": ["fused_acc", "audio_acc", "visual_acc"],
    "retrieval": ["r_mean", "ir@1", "ir@5", "ir@10", "tr@1", "tr@5", "tr@10"],
}
# audio-visual retrieval of an audio-visual set (``Cell.av_retrieval``), row metric = "avr_" + protocol metric
AV_RETRIEVAL_METRICS = ["r_mean", "a2i@1", "a2i@5", "a2i@10", "i2a@1", "i2a@5", "i2a@10", "chance@1"]


def run_distill_cell(cell: Cell, data_root: str | None = None) -> list[dict[str, Any]]:
    from ..data import load_dataset
    from ..distill import Budget, get_method
    from ..distill.base import run
    from ..config import from_dict
    from ..evaluate.protocol import default_protocol, evaluate_real, evaluate_set
    from ..evaluate.results import aggregate
    from ..seed import set_threads

    set_threads(cell.threads)
    _warm_imports()
    t0 = time.perf_counter()
    train = load_dataset(cell.dataset, "train", data_root, **cell.data)
    test = load_dataset(cell.dataset, "test", data_root, **cell.data)
    archs = [cell.eval_arch, *cell.extra_archs]
    distill_s: list[float] = []
    distill_cpu: list[float] = []  # this process's CPU seconds of the distillation alone (robust to a loaded box)
    experts: dict[str, float] | None = None  # one-off expert-buffer training (trajectory family, MDM): reported, not added
    s_per_iter: list[float] = []
    cpu_s_per_iter: list[float] = []  # CPU seconds per iteration: comparable across cells run under different load
    per_arch: dict[str, list[dict[str, float]]] = {a: [] for a in archs}
    protocols: dict[str, dict[str, Any]] = {}
    av_ret = cell.av_retrieval and train.task == "classification"
    ret_proto: dict[str, Any] = {}

    def retrieval(syn: Any, seeds: list[int]) -> None:
        """The eval_arch's per-seed metrics gain the audio-visual retrieval ones (``avr_*``)."""
        proto = default_protocol("av-retrieval", arch=cell.eval_arch, seeds=seeds)
        r = evaluate_set(syn, train, test, proto) if syn is not None else evaluate_real(train, test, proto)
        ret_proto.update(r.protocol)
        for i, row in enumerate(per_arch[cell.eval_arch][-len(seeds):]):
            row.update({f"avr_{k}": v["per_seed"][i] for k, v in r.metrics.items()})

    extra_protos: dict[str, list[dict[str, float]]] = {name: [] for name in cell.protocols}
    extra_desc: dict[str, dict[str, Any]] = {}

    def other_protocols(syn: Any, seeds: list[int]) -> None:
        """The eval_arch's set(s) under each extra ``eval.protocol`` (rows ``<method>@<protocol>``)."""
        for name in cell.protocols:
            proto = default_protocol(train.task, arch=cell.eval_arch, **{**cell.eval, "protocol": name, "seeds": seeds})
            r = evaluate_set(syn, train, test, proto) if syn is not None else evaluate_real(train, test, proto)
            extra_desc[name] = r.protocol
            extra_protos[name] += [{k: v["per_seed"][i] for k, v in r.metrics.items()} for i in range(len(seeds))]

    if cell.method == "full":
        for a in archs:
            proto = default_protocol(train.task, arch=a, **{**cell.eval, "seeds": cell.seeds})
            res = evaluate_real(train, test, proto)
            per_arch[a] = [{k: v["per_seed"][i] for k, v in res.metrics.items()} for i in range(len(cell.seeds))]
            protocols[a] = res.protocol
        if av_ret:
            retrieval(None, list(cell.seeds))
        other_protocols(None, list(cell.seeds))
    else:
        method_cls = get_method(cell.method)
        method_cfg = from_dict(method_cls.Config, cell.params, where=f"bench cell {cell.id}")
        syn_seeds = cell.syn_seeds if cell.syn_seeds is not None else cell.seeds
        with tempfile.TemporaryDirectory(prefix="mmdistill-bench-") as tmp:
            for s in syn_seeds:
                d0, c0 = time.perf_counter(), time.process_time()
                dist = method_cls(method_cfg, train, Budget(int(cell.budget or 0), cell.unit or "ipc"), s)  # type: ignore[arg-type]
                syn = run(dist, Path(tmp) / f"s{s}", progress=False)
                distill_s.append(time.perf_counter() - d0)
                distill_cpu.append(time.process_time() - c0)
                experts = _experts_cost(dist)
                if dist.iterations:
                    s_per_iter.append(distill_s[-1] / dist.iterations)
                    cpu_s_per_iter.append(distill_cpu[-1] / dist.iterations)
                eval_seeds = cell.seeds if cell.syn_seeds is not None else [s]
                for a in archs:
                    proto = default_protocol(train.task, arch=a, **{**cell.eval, "seeds": eval_seeds})
                    r = evaluate_set(syn, train, test, proto)
                    protocols[a] = r.protocol
                    per_arch[a] += [{k: v["per_seed"][i] for k, v in r.metrics.items()} for i in range(len(eval_seeds))]
                if av_ret:
                    retrieval(syn, list(eval_seeds))
                other_protocols(syn, list(eval_seeds))
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak = usage.ru_maxrss / 1024.0
    cpu = usage.ru_utime + usage.ru_stime  # robust to other load on the box, unlike wall time
    load1 = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for a in archs:
        metrics = aggregate(per_arch[a])
        cid = cell.cell_id(a)
        base = {
            "suite": cell.suite, "dataset": cell.dataset, "method": cell.row_method,
            "budget": cell.budget if cell.budget else len(train), "budget_unit": cell.unit or "pairs",
            "eval_arch": a, "n_seeds": len(per_arch[a]), "n_sets": len(distill_s) or None, "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "threads": torch.get_num_threads(), "load_avg_1m": round(load1, 2),
            "peak_rss_mb": round(peak, 1), "command": f"mmdistill bench --suite {cell.suite} --only {cell.id}",
            "cell": cid, "data_params": cell.data, **cell.extra,
        }
        arows = []
        names = METRICS[train.task] + ([f"avr_{k}" for k in AV_RETRIEVAL_METRICS] if av_ret and a == cell.eval_arch else [])
        for name in names:
            if name in metrics:
                m = metrics[name]
                arows.append({**base, "metric": name, "mean": m["mean"], "std": m["std"], "per_seed": m["per_seed"]})
        if distill_s:
            arows.append({**base, "metric": "distill_wall_s", "mean": sum(distill_s) / len(distill_s),
                          "std": _std(distill_s), "per_seed": distill_s})
        if distill_cpu:
            arows.append({**base, "metric": "distill_cpu_s", "mean": sum(distill_cpu) / len(distill_cpu),
                          "std": _std(distill_cpu), "per_seed": distill_cpu})
        for k, v in (experts or {}).items():
            arows.append({**base, "metric": k, "mean": v, "std": 0.0, "per_seed": [v]})
        if s_per_iter:
            arows.append({**base, "metric": "s_per_iter", "mean": sum(s_per_iter) / len(s_per_iter),
                          "std": _std(s_per_iter), "per_seed": s_per_iter})
        if cpu_s_per_iter:
            arows.append({**base, "metric": "cpu_s_per_iter", "mean": sum(cpu_s_per_iter) / len(cpu_s_per_iter),
                          "std": _std(cpu_s_per_iter), "per_seed": cpu_s_per_iter})
        arows.append({**base, "metric": "peak_rss_mb", "mean": peak, "std": 0.0, "per_seed": [peak]})
        p = dict(protocols.get(a, {}))
        p["eval_seeds"] = cell.seeds
        p["syn_seeds"] = cell.syn_seeds if cell.syn_seeds is not None else (cell.seeds if cell.method != "full" else None)
        arows[0]["protocol"] = p
        if av_ret and a == cell.eval_arch:
            first = next(r for r in arows if r["metric"].startswith("avr_"))
            first["protocol"] = {**ret_proto, "eval_seeds": cell.seeds}
        rows += arows
        if a != cell.eval_arch:
            continue
        for name, recs in extra_protos.items():  # the same sets, another evaluation learner
            pm = aggregate(recs)
            prows = [{**base, "method": f"{cell.row_method}@{name}", "metric": k, "mean": pm[k]["mean"],
                      "std": pm[k]["std"], "per_seed": pm[k]["per_seed"]} for k in METRICS[train.task] if k in pm]
            if prows:
                prows[0]["protocol"] = {**extra_desc[name], "eval_seeds": cell.seeds}
            rows += prows
    return rows


def _warm_imports() -> None:
    """One-off library imports are not distillation: load them before any clock starts, in every cell
    (torch.optim's first optimizer imports torch._dynamo, 2-5 s; MDM's k-means imports scikit-learn)."""
    import sklearn.cluster  # noqa: F401

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _experts_cost(dist: Any) -> dict[str, float] | None:
    """The expert buffer a method read, per trajectory: training wall s (as recorded when it was trained), storage
    MB, the last training step's InfoNCE loss and its chance level ln(batch); ``experts_wall_s`` is the total."""
    buf = getattr(dist, "buffer", None)
    files = getattr(buf, "experts", None)
    if not files:
        return None
    import math

    from safetensors import safe_open

    walls, losses = [], []
    for f in files:
        with safe_open(str(f), framework="pt") as h:
            meta = h.metadata() or {}
        walls.append(float(meta.get("wall_s", "nan")))
        losses.append(float(meta.get("final_loss", "nan")))
    n = len(files)
    out = {"experts_wall_s": sum(walls), "experts_n": float(n), "experts_wall_s_per_trajectory": sum(walls) / n,
           "experts_mb_per_trajectory": sum(Path(f).stat().st_size for f in files) / n / 2**20,
           "experts_final_loss": sum(losses) / n}
    manifest = getattr(buf, "manifest", None) or {}
    bs = (manifest.get("optimizer") or {}).get("batch_size")
    if bs:
        out["experts_chance_loss"] = math.log(min(int(bs), int(manifest.get("dataset_fingerprint", {}).get("captions") or bs)))
    return out


def _std(v: list[float]) -> float:
    import statistics

    return statistics.stdev(v) if len(v) > 1 else 0.0
