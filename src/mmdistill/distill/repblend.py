"""RepBlend (Zhang et al., NeurIPS 2025): LoRS with (1) representation blending -
mixup of the pre-projection representations (frozen-encoder image features and text vectors) within each
synthetic minibatch, one λ ~ Beta(β, β) and one permutation for both modalities, replayed in the
constant-memory pass - and (2) symmetric projection trajectory matching: a frozen image encoder, and only
the two projection heads' trajectories are matched (buffers in ``heads`` mode). Its evaluation trains the
heads only (``trained_modules: heads`` with the buffer's ``image_encoder.safetensors``).

Default ``gradient: reverse`` (exact). The released code computes the TESLA approximation; the paper configs
(``configs/vl/repblend_{flickr30k,coco}.yaml``) use ``gradient: tesla``, ``loss: wbce-eps`` and
``batching: chunks`` as it does. With WBCE the exact gradient points away from TESLA's (cosine −0.80 at 499
pairs, 8 steps, 547× the norm; table in :mod:`.trajectory`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..experts.buffers import ExpertConfig
from .base import METHODS
from .vl_tm import VLTMConfig, VLTrajectoryDistiller


@dataclass
class RepBlendConfig(VLTMConfig):
    gradient: Literal["unrolled", "reverse", "tesla"] = "reverse"
    student: Literal["full", "heads"] = "heads"
    loss: str = "wbce"
    similarity: Literal["none", "lowrank", "full"] = "lowrank"
    minibatch: int = 20
    blend: bool = True
    experts: ExpertConfig = field(default_factory=lambda: ExpertConfig(mode="heads"))


@METHODS.register("repblend")
class RepBlend(VLTrajectoryDistiller):
    name = "repblend"
    Config = RepBlendConfig
