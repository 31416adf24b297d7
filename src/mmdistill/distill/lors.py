"""LoRS (Xu et al., ICML 2024): trajectory matching plus a learned low-rank
similarity S = diag(a) + (α/r) L Rᵀ as the soft target of a weighted-BCE contrastive loss, minibatch factor
indexing, constant-memory gradient. Evaluation trains against S (``similarity.loss_and_target_from_set``).

Default ``gradient: reverse`` (exact); ``gradient: tesla`` is the approximation of the released code, which the
paper configs (``configs/vl/lors_{flickr30k,coco}.yaml``) use together with the released loss form
``loss: wbce-eps`` and ``batching: chunks``. With WBCE the exact gradient is anti-correlated with TESLA's
(cosine −0.57 at 499 pairs, 8 steps, 31× the norm; table in :mod:`.trajectory`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from .base import METHODS
from ..losses.learned_similarity import Similarity
from .vl_tm import VLTMConfig, VLTrajectoryDistiller


@dataclass
class LoRSConfig(VLTMConfig):
    gradient: Literal["unrolled", "reverse", "tesla"] = "reverse"
    student: Literal["full", "heads"] = "full"
    loss: str = "wbce"
    minibatch: int = 20
    similarity: Literal["none", "lowrank", "full"] = "lowrank"  # the learned S ("none": identity targets)
    sim_rank: int = 10  # r of the low-rank S
    sim_alpha: float = 3.0  # α of the low-rank S (LoRS Flickr-100: 3)
    lr_sim: float = 10.0  # lr of the similarity factors (LoRS Flickr-100: 10)


@METHODS.register("lors")
class LoRS(VLTrajectoryDistiller):
    """Trajectory matching whose inner loss trains against the learned similarity S (the soft targets of every
    synthetic minibatch are S's block), S learned with the data and stored with the set."""

    name = "lors"
    Config = LoRSConfig
    sim: Similarity | None = None

    def target_floats_spec(self) -> tuple[str, int]:
        return self.cfg.similarity, self.cfg.sim_rank

    def init_extras(self, n: int, gen: torch.Generator) -> None:
        c = self.cfg
        self.sim = None
        if c.similarity != "none":
            self.sim = Similarity.init(n, c.similarity, c.sim_rank, c.sim_alpha, gen=gen).to(self.device).requires_grad_(True)

    def extra_groups(self) -> list[dict[str, Any]]:
        return [{"params": self.sim.params(), "lr": self.cfg.lr_sim}] if self.sim is not None else []

    def extra_params(self) -> list[Tensor]:
        return self.sim.params() if self.sim is not None else []

    def extra_data(self) -> dict[str, Tensor]:
        return {f"sim_{k}": v for k, v in self.sim.tensors.items()} if self.sim is not None else {}

    @property
    def learned_targets(self) -> bool:
        return self.sim is not None

    def targets(self, d: dict[str, Tensor], idx: Tensor) -> Tensor:
        if self.sim is None:
            return super().targets(d, idx)
        return self.sim.block_from({k[4:]: v for k, v in d.items() if k.startswith("sim_")}, idx)

    def export_extras(self, extras: dict[str, Tensor], meta: dict[str, Any]) -> None:
        if self.sim is not None:
            extras.update(self.sim.extras())
            meta["similarity"] = self.sim.meta(self.cfg.loss)

    def extra_state(self) -> dict[str, Any]:
        return {"sim": {k: v.detach().cpu().clone() for k, v in self.sim.tensors.items()}} if self.sim is not None else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if self.sim is not None:
            for k, v in state["sim"].items():
                self.sim.tensors[k].copy_(v)
