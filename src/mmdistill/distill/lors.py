"""LoRS (Xu et al., ICML 2024): trajectory matching plus a learned low-rank
similarity S = diag(a) + (α/r) L Rᵀ as the soft target of a weighted-BCE contrastive loss, minibatch factor
indexing, constant-memory gradient. Evaluation trains against S (``similarity.loss_and_target_from_set``).

Default ``gradient: reverse`` (exact); ``gradient: tesla`` is the approximation of the released code, which the
paper configs (``configs/vl/lors_{flickr30k,coco}.yaml``) use together with the released loss form
``loss: wbce-eps`` and ``batching: chunks``. With WBCE the exact gradient is anti-correlated with TESLA's
(cosine −0.57 at 499 pairs, 8 steps, 31× the norm; table in :mod:`.trajectory`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .base import METHODS
from .vl_tm import VLTMConfig, VLTrajectoryDistiller


@dataclass
class LoRSConfig(VLTMConfig):
    gradient: Literal["unrolled", "reverse", "tesla"] = "reverse"
    student: Literal["full", "heads"] = "full"
    loss: str = "wbce"
    similarity: Literal["none", "lowrank", "full"] = "lowrank"
    minibatch: int = 20


@METHODS.register("lors")
class LoRS(VLTrajectoryDistiller):
    name = "lors"
    Config = LoRSConfig
