"""Why DAVDD's trained encoder bank hurts (a diagnostic behind the DAVDD calibration).

A diagnostic, not a benchmark row: distil the DM and DAVDD quick configs (same herding init, synthetic seed 0)
and score three sets - the init, DM's and DAVDD's - in two feature spaces:

* **bank**: the K frozen, trained encoder pairs DAVDD matches in (:class:`mmdistill.experts.bank.EncoderBank`);
* **fresh**: ``n_fresh`` freshly drawn random ConvNet pairs (fixed seeds), DM's space and, like the
  evaluation nets, untrained at the start.

Per space: (i) the relative class-mean gap G = Σ_c Σ_m ‖μ_m(real_c) − μ_m(syn_c)‖² / Σ_c Σ_m ‖μ_m(real_c)‖²
(full training split, no augmentation; mean over nets); (ii) nearest-class-mean test accuracy of the synthetic
pairs used as class prototypes (cosine to each modality's synthetic class mean, summed over modalities; mean
over nets). Plus (iii) the same gap in DAVDD's own matched spaces [C_m(f); P_m(f)] of the bank decouplers,
(iv) how far the synthetic pixels moved, ‖x_T − x_0‖ / ‖x_0‖ per modality, and (v) each method's own loss terms
at the start and end (mean over its first / last 10 logged iterations). :data:`RUNS` adds DAVDD at a small
step (lr 0.05) and with scale-normalised terms, to separate the step length from its direction.

If DAVDD shrinks the bank gap and raises the bank NCM accuracy while the fresh-net gap and accuracy get worse,
the set has been fitted to features specific to the trained encoders (non-robust, adversarial-like pixel
changes) that fresh evaluation nets cannot use. Written for DAVDD as implemented at commit 0384fa3 (see README.md).
Run from the repository root (writes ``results.json``)::

    OMP_NUM_THREADS=1 python benchmarks/studies/davdd_diagnose/diagnose.py [dataset] [ipc]
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


REPO = Path(__file__).resolve().parents[3]  # the checkout: benchmarks/suites/ and configs/ live there


def av_cell(label: str, dataset: str, ipc: int) -> Any:
    """The ``av`` suite's cell of row ``label`` (the method, params and data params the benchmark runs)."""
    from mmdistill.bench.suite import load_suite

    for c in load_suite("av", REPO / "benchmarks" / "suites", REPO / "configs").cells:
        if c.dataset == dataset and c.row_method == label and c.budget == ipc:
            return c
    raise SystemExit(f"the av suite has no cell {label} on {dataset} at IPC {ipc}")

MODALITIES = ("audio", "visual")


def _set_tensors(dist: Any) -> dict[str, list[Tensor]]:
    return {m: [t.detach().clone() for t in dist.syn[m]] for m in MODALITIES}


@torch.no_grad()
def _scores(nets: list[dict[str, nn.Module]], train: Any, test: Any, sets: dict[str, dict[str, list[Tensor]]]
            ) -> dict[str, dict[str, float]]:
    """Class-mean gap and NCM test accuracy of every set, averaged over the given encoder pairs."""
    y_tr, y_te = train.labels, test.labels
    classes = int(y_tr.max()) + 1
    out: dict[str, dict[str, float]] = {name: {"gap": 0.0, "ncm_acc": 0.0} for name in sets}
    for enc in nets:
        feats = {m: {s: enc[m].embed(d.tensors[m].float()) for s, d in (("train", train), ("test", test))} for m in MODALITIES}
        mu_r = {m: torch.stack([feats[m]["train"][y_tr == c].mean(0) for c in range(classes)]) for m in MODALITIES}
        denom = sum(float((mu_r[m] ** 2).sum()) for m in MODALITIES)
        for name, syn in sets.items():
            mu_s = {m: torch.stack([enc[m].embed(syn[m][c].float()).mean(0) for c in range(classes)]) for m in MODALITIES}
            gap = sum(float(((mu_r[m] - mu_s[m]) ** 2).sum()) for m in MODALITIES) / denom
            sim = sum(F.normalize(feats[m]["test"], dim=1) @ F.normalize(mu_s[m], dim=1).T for m in MODALITIES)
            acc = float((sim.argmax(1) == y_te).float().mean()) * 100.0
            out[name]["gap"] += gap / len(nets)
            out[name]["ncm_acc"] += acc / len(nets)
    return out


TERMS = ("loss", "l_private", "l_common", "l_sample", "l_align", "l_dm")


def _loss_ends(run_dir: Path, n: int = 10) -> dict[str, tuple[float, float]]:
    """Mean of each logged loss term over the first and the last ``n`` iterations."""
    recs = [json.loads(x) for x in (run_dir / "log.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    recs = [r for r in recs if "event" not in r]
    out = {}
    for t in TERMS:
        v = [r[t] for r in recs if t in r]
        if v and any(v):
            out[t] = (round(sum(v[:n]) / len(v[:n]), 4), round(sum(v[-n:]) / len(v[-n:]), 4))
    return out


@torch.no_grad()
def _decoupled_gap(encs: list[dict[str, nn.Module]], decs: list[Any], train: Any, sets: dict[str, dict[str, list[Tensor]]]
                   ) -> dict[str, float]:
    """The relative class-mean gap in DAVDD's own spaces: [C_m(f); P_m(f)] of every bank pair (mean over pairs)."""
    y = train.labels
    classes = int(y.max()) + 1
    out = {name: 0.0 for name in sets}
    for enc, dec in zip(encs, decs):
        def proj(m: str, x: Tensor) -> Tensor:
            f = enc[m].embed(x.float())
            return torch.cat([dec.common[m](f), dec.private[m](f)], 1)
        mu_r = {m: torch.stack([proj(m, train.tensors[m][y == c]).mean(0) for c in range(classes)]) for m in MODALITIES}
        denom = sum(float((mu_r[m] ** 2).sum()) for m in MODALITIES)
        for name, syn in sets.items():
            mu_s = {m: torch.stack([proj(m, syn[m][c]).mean(0) for c in range(classes)]) for m in MODALITIES}
            out[name] += sum(float(((mu_r[m] - mu_s[m]) ** 2).sum()) for m in MODALITIES) / denom / len(encs)
    return out


# label -> (quick config, overrides): DM, DAVDD, and DAVDD variants that separate step size from objective
RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    "dm": ("dm", {}),
    "davdd": ("davdd", {}),
    "davdd-lr0.05": ("davdd", {"lr_audio": 0.05, "lr_visual": 0.05}),
    "davdd-realscale": ("davdd", {"term_norm": "real_scale"}),
}


def diagnose(dataset: str = "av-digits-hard", ipc: int = 1, n_fresh: int = 8, data_root: str | None = None,
             variants: dict[str, tuple[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    from mmdistill.bench.suite import merge
    from mmdistill.config import from_dict
    from mmdistill.data import load_dataset
    from mmdistill.distill import Budget, get_method
    from mmdistill.distill.base import run
    from mmdistill.experts.bank import EncoderBank
    from mmdistill.seed import derive_seed, seed_everything

    DATA = av_cell("dm", dataset, ipc).data

    torch.set_num_threads(1)
    train = load_dataset(dataset, "train", data_root, **DATA)
    test = load_dataset(dataset, "test", data_root, **DATA)
    sets: dict[str, dict[str, list[Tensor]]] = {}
    res: dict[str, Any] = {"dataset": dataset, "ipc": ipc, "moved": {}, "own_loss_first_last": {}}
    dists = {}
    with tempfile.TemporaryDirectory(prefix="mmdistill-diag-") as tmp:
        for label, (conf, over) in (variants or RUNS).items():
            cell = av_cell(conf, dataset, ipc)
            method, params = cell.method, merge(cell.params, over)
            cls = get_method(method)
            cfg = from_dict(cls.Config, params, where=f"diagnose {label}")
            if "init" not in sets:  # the herding init every method starts from (run() seeds init the same way)
                d0 = cls(cfg, train, Budget(ipc, "ipc"), 0)
                seed_everything(derive_seed(0, "init"))
                d0.init()
                sets["init"] = _set_tensors(d0)
            dist = cls(cfg, train, Budget(ipc, "ipc"), 0)
            run(dist, Path(tmp) / label, progress=False)
            sets[label] = _set_tensors(dist)
            dists[label] = dist
            res["own_loss_first_last"][label] = _loss_ends(Path(tmp) / label)
    for label in dists:
        res["moved"][label] = {m: float(torch.cat(sets[label][m]).sub(torch.cat(sets["init"][m])).norm()
                                        / torch.cat(sets["init"][m]).norm()) for m in MODALITIES}
    dav = dists["davdd"]
    bank = EncoderBank(train, dav.cfg.net, dav.cfg.bank)
    bank_nets = [bank.load_encoders(k) for k in range(dav.cfg.bank.size)]
    fresh = []
    for i in range(n_fresh):
        torch.manual_seed(10_000 + i)
        fresh.append(dav.random_nets())
    res["bank"] = _scores(bank_nets, train, test, sets)
    res["bank_decoupled_gap"] = _decoupled_gap(bank_nets, dav.decouplers, train, sets)
    res["fresh"] = _scores(fresh, train, test, sets)
    return res


if __name__ == "__main__":
    from mmdistill.io import atomic_write_json

    a = sys.argv[1:]
    out = diagnose(a[0] if a else "av-digits-hard", int(a[1]) if len(a) > 1 else 1)
    atomic_write_json(Path(__file__).resolve().parent / "results.json", out)
    print(json.dumps(out, indent=1))
