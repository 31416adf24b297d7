"""MTT-VL (Wu et al., TMLR 2024): bi-trajectory matching of the whole image encoder
(+ projection) and the text head, unrolled with ``create_graph`` (memory O(syn_steps)), learned step sizes,
symmetric InfoNCE in the inner loop. ``reproduce_scale_bug: true`` reproduces the released code's logits
``log_scale · cos`` (scale 2.66 instead of exp(log_scale) = 14.3 at τ = 0.07) for comparison."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .base import METHODS
from .vl_tm import VLTMConfig, VLTrajectoryDistiller


@dataclass
class MTTVLConfig(VLTMConfig):
    gradient: Literal["unrolled", "reverse", "tesla"] = "unrolled"
    student: Literal["full", "heads"] = "full"
    loss: str = "infonce"


@METHODS.register("mtt-vl")
class MTTVL(VLTrajectoryDistiller):
    name = "mtt-vl"
    Config = MTTVLConfig
