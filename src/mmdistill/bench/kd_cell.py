"""Run one cross-modal KD benchmark cell: train its students (or, for ``similarity``, measure the low/high-band
cosine between the two modalities' unimodal nets) and return its rows."""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from .spec import KDCell


def _kd_config(cell: KDCell, method: str):
    from ..config import from_dict
    from ..kd.config import KDRunConfig

    data = {"dataset": cell.dataset, "teacher_modality": cell.teacher_modality,
            "student_modality": cell.student_modality, "method": method, "params": dict(cell.params),
            "data": dict(cell.data), "seeds": list(cell.seeds), **cell.eval}
    return from_dict(KDRunConfig, data, where=f"bench cell {cell.id}")


def _similarity(cell: KDCell, data_root: str | None) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Per seed: features of the teacher-modality net and the student-modality net on the test pairs."""
    import torch

    from ..data import load_dataset
    from ..kd.similarity import band_similarity, common_mean_random
    from ..kd.taps import pool
    from ..kd.teacher import get_teacher
    from ..kd.trainer import _forward, _num_classes
    from ..kd.views import make_view

    cfg = _kd_config(cell, "no-kd")
    train = load_dataset(cfg.dataset, "train", data_root, **cfg.data)
    test = load_dataset(cfg.dataset, "test", data_root, **cfg.data)
    per: dict[str, list[float]] = {}
    info: dict[str, Any] = {}
    for s in cfg.seeds:
        feats = {}
        for mod, other, spec in ((cfg.teacher_modality, cfg.student_modality, cfg.teacher),
                                 (cfg.student_modality, cfg.teacher_modality, cfg.student)):
            tr, te = make_view(train, mod, other, cfg.label), make_view(test, mod, other, cfg.label)
            nc = _num_classes(tr.y_student, te.y_student)
            net, taps, man = get_teacher(dataset=cfg.dataset, data=cfg.data, modality=mod, label=cfg.label, spec=spec,
                                         train=cfg.teacher_train, seed=s, x_train=tr.x_student, y_train=tr.y_student,
                                         x_test=te.x_student, y_test=te.y_student, num_classes=nc,
                                         use_cache=cfg.teacher_cache)
            info[f"{mod}_acc_seed{s}"] = man["test_acc"]
            feats[mod] = (net, taps)
        # paired test rows, seen from the student modality: each student row and its first partner
        view = make_view(test, cfg.student_modality, cfg.teacher_modality, cfg.label)
        rows = torch.arange(view.x_student.shape[0])
        t_rows = view.first_partners(rows)
        out = {}
        with torch.no_grad():
            for mod, x in ((cfg.student_modality, view.x_student[rows]), (cfg.teacher_modality, view.x_teacher[t_rows])):
                net, taps = feats[mod]
                net.eval()
                _, f = _forward(net, x, [taps["feat"]], "output")
                out[mod] = pool(f[taps["feat"]])
        fa, fb = out[cfg.teacher_modality], out[cfg.student_modality]
        real = band_similarity(fa, fb, seed=s)
        rand = common_mean_random(fa, fb, seed=s)
        for k, v in real.items():
            per.setdefault(k, []).append(v)
        for k, v in rand.items():
            if k != "stats":
                per.setdefault(f"rand_{k}", []).append(v)
        info[f"stats_seed{s}"] = rand["stats"]
    return per, info


def run_kd_cell(cell: KDCell, data_root: str | None = None) -> list[dict[str, Any]]:
    from ..kd.trainer import run_kd
    from ..seed import set_threads

    set_threads(cell.threads)
    t0 = time.perf_counter()
    protocol: dict[str, Any] = {}
    if cell.method == "similarity":
        per, info = _similarity(cell, data_root)
        protocol = {"task": "cross-modal KD similarity control", "features": "pooled pre-ReLU feat taps of the two "
                    "unimodal nets (teacher recipe on each modality)", "pairs": "test split", **info}
        train_s: list[float] = []
    else:
        cfg = _kd_config(cell, cell.method)
        with tempfile.TemporaryDirectory(prefix="mmdistill-kd-") as tmp:
            res = run_kd(cfg, Path(tmp), data_root)
        per = {k: v["per_seed"] for k, v in res.metrics.items()}
        protocol = res.protocol
        train_s = [r["train_s"] for r in res.extra["per_seed"]]
        for k in ("band_cos_low", "band_cos_high"):
            if any(k in r for r in res.extra["per_seed"]):
                per[k] = [r[k] for r in res.extra["per_seed"]]
        if any("final_cut" in r for r in res.extra["per_seed"]):
            per["learned_cut_bin"] = [r["final_cut"] for r in res.extra["per_seed"]]
        if cell.method == "c2kd":
            per["teacher_acc_after"] = [r["teacher_acc_after"] for r in res.extra["per_seed"]]
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    base = {"suite": cell.suite, "dataset": cell.dataset, "method": cell.row_method, "budget": "full",
            "budget_unit": "training split", "eval_arch": cell.eval_arch, "n_seeds": len(cell.seeds), "n_sets": None,
            "wall_s": round(wall, 2), "peak_rss_mb": round(peak, 1),
            "command": f"mmdistill bench --suite {cell.suite} --only {cell.id}", "cell": cell.id, **cell.extra}
    rows = []
    for name, vals in per.items():
        rows.append({**base, "metric": name, "mean": statistics.fmean(vals),
                     "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "per_seed": vals})
    if train_s:
        rows.append({**base, "metric": "student_train_s", "mean": statistics.fmean(train_s),
                     "std": statistics.stdev(train_s) if len(train_s) > 1 else 0.0, "per_seed": train_s})
    rows.append({**base, "metric": "peak_rss_mb", "mean": peak, "std": 0.0, "per_seed": [peak]})
    rows[0]["protocol"] = {**protocol, "eval_seeds": cell.seeds}
    return rows
