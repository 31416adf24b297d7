"""Evaluate a SyntheticSet (or the full real set) under one explicit protocol over N seeds.

``evaluate_set`` trains fresh models on the set and tests on the dataset's test split;
``evaluate_real`` does the same on the full training set (the upper bound); ``random_subset``
draws the same-size random real subset that every result file carries as a baseline.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import torch

from ..data.paired import PairedDataset
from ..config import from_dict
from ..errors import ConfigError
from ..seed import generator
from ..synth import SyntheticSet
from . import av_retrieval, classification, retrieval
from .results import Results, aggregate

Protocol = classification.ClassificationProtocol | retrieval.RetrievalProtocol | av_retrieval.AVRetrievalProtocol
TASKS = ("classification", "retrieval", "av-retrieval")


def default_protocol(task: str, arch: str | None = None, seeds: list[int] | None = None, **overrides: Any) -> Protocol:
    if task == "classification":
        p: Protocol = from_dict(classification.ClassificationProtocol, overrides, where="eval")
        if arch:
            p = replace(p, arch=arch)
    elif task == "retrieval":
        p = from_dict(retrieval.RetrievalProtocol, overrides, where="eval")
        if arch:
            p = replace(p, image_arch=arch)
    elif task == "av-retrieval":
        p = from_dict(av_retrieval.AVRetrievalProtocol, overrides, where="eval")
        if arch:
            p = replace(p, arch=arch)
    else:
        raise ConfigError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if seeds is not None:
        p = replace(p, seeds=list(seeds))
    return p


def decode_for_training(syn: SyntheticSet) -> SyntheticSet:
    """Expand a factorised set to the pairs models train on (identity for factor 1)."""
    layout = syn.meta.get("layout") or {}
    if int(layout.get("factor", 1)) > 1:
        from ..factor import decode_set  # factorised storage

        return decode_set(syn)
    return syn


def _soft_target(syn: SyntheticSet):
    """(target_fn, loss_fn) when the set carries a learned similarity matrix (LoRS family)."""
    if not any(k.startswith("sim_") for k in syn.extras):
        return None, None
    from ..losses.learned_similarity import loss_and_target_from_set  # LoRS similarity

    return loss_and_target_from_set(syn)


def _learned_lrs(syn: SyntheticSet) -> dict[str, float] | None:
    if "syn_lr_img" in syn.extras and "syn_lr_txt" in syn.extras:
        return {"image": float(syn.extras["syn_lr_img"].reshape(-1)[0]), "text": float(syn.extras["syn_lr_txt"].reshape(-1)[0])}
    return None


def _run_seeds(protocol: Protocol, train_fn) -> tuple[list[dict[str, float]], float]:
    t0 = time.perf_counter()
    per_seed = [train_fn(s) for s in protocol.seeds]
    return per_seed, time.perf_counter() - t0


def evaluate_tensors(
    protocol: Protocol,
    train: dict[str, torch.Tensor],
    labels: torch.Tensor | None,
    test: PairedDataset,
    *,
    target=None,
    learned_lrs=None,
    device: str = "cpu",
) -> tuple[dict[str, dict[str, Any]], float]:
    if isinstance(protocol, classification.ClassificationProtocol):
        if labels is None:
            raise ConfigError("classification protocol needs labels")
        test_in = {m: test.tensors[m] for m in train}
        nc = test.num_classes or int(labels.max()) + 1

        def fn(seed: int) -> dict[str, float]:
            return classification.train_and_test(protocol, train, labels, test_in, test.labels, nc, seed, device)
    elif isinstance(protocol, av_retrieval.AVRetrievalProtocol):
        groups, _ = av_retrieval.positives_of(test)
        test_in = {m: test.tensors[m] for m in av_retrieval.MODALITIES}

        def fn(seed: int) -> dict[str, float]:
            return av_retrieval.train_and_test(protocol, train, test_in, groups, seed, device)
    else:
        tfn, lfn = target if target else (None, None)

        def fn(seed: int) -> dict[str, float]:
            return retrieval.train_and_test(
                protocol, train["image"], train["text"], test.tensors["image"], test.tensors["text"], test.text_to_image,
                seed, target_fn=tfn, soft_loss_fn=lfn, learned_lrs=learned_lrs, device=device,
            )
    per_seed, wall = _run_seeds(protocol, fn)
    return aggregate(per_seed), wall


def evaluate_set(syn: SyntheticSet, train_ds: PairedDataset, test_ds: PairedDataset, protocol: Protocol,
                 device: str = "cpu") -> Results:
    syn.check_compatible(train_ds.pair_shape(), dataset=train_ds.name)
    dec = decode_for_training(syn)
    use_sim = isinstance(protocol, retrieval.RetrievalProtocol) and protocol.similarity == "set"
    target = _soft_target(dec) if use_sim else None
    lrs = _learned_lrs(dec)
    if isinstance(protocol, retrieval.RetrievalProtocol) and protocol.lr_source == "learned" and lrs is None:
        raise ConfigError("protocol lr_source='learned' but the set has no learned step sizes")
    metrics, wall = evaluate_tensors(protocol, dec.tensors, dec.labels, test_ds, target=target, learned_lrs=lrs, device=device)
    return Results(
        dataset=train_ds.name, method=str(syn.meta.get("method", "unknown")), budget=syn.meta.get("budget"),
        protocol=protocol.describe(len(dec)), metrics=metrics,
        extra={"eval_wall_s": wall, "n_train_pairs": len(dec), "storage": syn.budget(), **_positives(protocol, test_ds)},
    )


def evaluate_real(train_ds: PairedDataset, test_ds: PairedDataset, protocol: Protocol, device: str = "cpu") -> Results:
    pairs = train_ds.pairs()
    metrics, wall = evaluate_tensors(protocol, pairs, train_ds.pair_labels(), test_ds, device=device)
    return Results(
        dataset=train_ds.name, method="full", budget={"value": len(train_ds), "unit": "pairs"},
        protocol=protocol.describe(len(train_ds)), metrics=metrics,
        extra={"eval_wall_s": wall, "n_train_pairs": len(train_ds), **_positives(protocol, test_ds)},
    )


def _positives(protocol: Protocol, test_ds: PairedDataset) -> dict[str, str]:
    """AV retrieval: which positives the test used (concept, or class for label-paired data)."""
    if isinstance(protocol, av_retrieval.AVRetrievalProtocol):
        return {"positives": av_retrieval.positives_of(test_ds)[1]}
    return {}


def random_subset(train_ds: PairedDataset, budget: dict[str, Any], seed: int) -> torch.Tensor:
    """Indices of a random real subset of the same size: ``ipc`` per class, or ``pairs`` rows."""
    gen = generator(seed)
    value, unit = int(budget["value"]), budget["unit"]
    if unit == "ipc":
        lab = train_ds.pair_labels()
        out = []
        for c in range(train_ds.num_classes or int(lab.max()) + 1):
            idx = torch.nonzero(lab == c, as_tuple=False).flatten()
            out.append(idx[torch.randperm(idx.numel(), generator=gen)[:value]])
        return torch.cat(out)
    return torch.randperm(len(train_ds), generator=gen)[:value]


def evaluate_random_baseline(syn: SyntheticSet, train_ds: PairedDataset, test_ds: PairedDataset, protocol: Protocol,
                             device: str = "cpu") -> Results:
    """A random real subset of the set's size, evaluated under the same protocol (one subset per seed)."""
    budget = dict(syn.meta.get("budget") or {"value": len(syn), "unit": "pairs"})
    if budget["unit"] == "pairs":
        budget["value"] = len(syn)
    per_seed = []
    t0 = time.perf_counter()
    for s in protocol.seeds:
        idx = random_subset(train_ds, budget, seed=10_000 + s)
        sub = train_ds.pairs(idx)
        lab = train_ds.pair_labels()
        one = replace(protocol, seeds=[s])
        m, _ = evaluate_tensors(one, sub, None if lab is None else lab[idx], test_ds, device=device)
        per_seed.append({k: v["mean"] for k, v in m.items()})
    return Results(dataset=train_ds.name, method="random", budget=budget, protocol=protocol.describe(int(idx.numel())),
                   metrics=aggregate(per_seed), extra={"eval_wall_s": time.perf_counter() - t0})
