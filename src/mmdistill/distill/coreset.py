"""Coreset baselines as methods: ``random``, ``herding``, ``k-center``, ``forgetting``.

Budgets: ``--ipc N`` selects N real pairs per class; ``--pairs N`` selects N pairs overall.
Feature-based rules read one real proxy training run (:mod:`mmdistill.coreset.proxy`) trained with
the run's seed, so three seeds give three different (honest) coresets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from .base import METHODS, Distiller
from ..seed import derive_seed, generator
from ..synth import SyntheticSet
from ..coreset import select
from ..coreset.proxy import ProxyConfig, proxy_stats


@dataclass
class CoresetConfig:
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    iterations: int = 0


class Coreset(Distiller):
    Config: ClassVar[type] = CoresetConfig
    needs_proxy: ClassVar[bool] = True

    def init(self) -> None:
        stats = proxy_stats(self.dataset, self.cfg.proxy, self.seed) if self.needs_proxy else {}
        gen = generator(derive_seed(self.seed, self.name))
        if self.budget.unit == "ipc":
            lab = self.dataset.pair_labels()
            groups = [torch.nonzero(lab == c, as_tuple=False).flatten() for c in range(self.dataset.num_classes or int(lab.max()) + 1)]
        else:
            groups = [torch.arange(len(self.dataset))]
        chosen = []
        for rows in groups:
            local = self.pick(rows, stats, self.budget.value, gen)
            chosen.append(rows[local])
        self.indices = torch.cat(chosen)

    def pick(self, rows: torch.Tensor, stats: dict, k: int, gen: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def export(self) -> SyntheticSet:
        lab = self.dataset.pair_labels()
        meta = self.base_meta()
        meta["source_indices"] = self.indices.tolist()
        if self.dataset.captions is not None:
            meta["captions"] = [self.dataset.captions[int(i)] for i in self.indices]
        return SyntheticSet(
            tensors={k: v.clone() for k, v in self.dataset.pairs(self.indices).items()},
            labels=None if lab is None else lab[self.indices].clone(),
            meta=meta,
        )


@METHODS.register("random")
class RandomCoreset(Coreset):
    name = "random"
    needs_proxy = False

    def pick(self, rows, stats, k, gen):
        return select.random_select(rows.numel(), k, gen)


@METHODS.register("herding")
class HerdingCoreset(Coreset):
    name = "herding"

    def pick(self, rows, stats, k, gen):
        return select.herding_select(stats["features"][rows], k)


@METHODS.register("k-center")
class KCenterCoreset(Coreset):
    name = "k-center"

    def pick(self, rows, stats, k, gen):
        return select.kcenter_select(stats["features"][rows], k, gen)


@METHODS.register("forgetting")
class ForgettingCoreset(Coreset):
    name = "forgetting"

    def pick(self, rows, stats, k, gen):
        return select.forgetting_select(stats["forgetting"][rows], k, gen)
