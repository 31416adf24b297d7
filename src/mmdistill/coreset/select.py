"""Coreset selection rules on precomputed features or scores.

All functions return indices into the rows they were given and are deterministic given their
generator. Herding follows VICO-UoE/DatasetCondensation#15: step i picks
argmin_j ||(i+1)·mean − Σ_selected φ − φ_j|| among unselected rows.
"""

from __future__ import annotations

import torch
from torch import Tensor


def random_select(n: int, k: int, gen: torch.Generator) -> Tensor:
    return torch.randperm(n, generator=gen)[:k]


def herding_select(feats: Tensor, k: int) -> Tensor:
    feats = feats.double()
    mu = feats.mean(0)
    chosen: list[int] = []
    acc = torch.zeros_like(mu)
    available = torch.ones(feats.shape[0], dtype=torch.bool)
    for i in range(min(k, feats.shape[0])):
        target = (i + 1) * mu - acc
        d = (target.unsqueeze(0) - feats).norm(dim=1)
        d[~available] = float("inf")
        j = int(d.argmin())
        chosen.append(j)
        available[j] = False
        acc += feats[j]
    return torch.tensor(chosen, dtype=torch.long)


def kcenter_select(feats: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """Greedy k-center (farthest-first traversal) from a seeded random first centre."""
    n = feats.shape[0]
    k = min(k, n)
    first = int(torch.randint(n, (1,), generator=gen))
    chosen = [first]
    dist = (feats - feats[first]).norm(dim=1)
    for _ in range(k - 1):
        j = int(dist.argmax())
        chosen.append(j)
        dist = torch.minimum(dist, (feats - feats[j]).norm(dim=1))
    return torch.tensor(chosen, dtype=torch.long)


def forgetting_select(counts: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """The k most-forgotten rows (Toneva et al.); ties broken by a seeded random order."""
    tiebreak = torch.rand(counts.shape[0], generator=gen)
    order = sorted(range(counts.shape[0]), key=lambda i: (-float(counts[i]), float(tiebreak[i])))
    return torch.tensor(order[:k], dtype=torch.long)
