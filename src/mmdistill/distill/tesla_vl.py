"""TESLA-VL: MTT-VL's loss with a constant-memory gradient.

Default ``gradient: reverse`` is the *exact* constant-memory reverse mode: the
same gradient as MTT-VL's unrolled one (tested to rtol 1e-4) with memory flat in ``syn_steps``.
``gradient: tesla`` is the TESLA approximation of LoRS's released code (student parameters treated as
constants per step). LoRS's "TESLA-VL" baseline row also swaps InfoNCE for WBCE: ``loss: wbce-eps`` (the
released form); the paper configs (``configs/vl/tesla-vl_{flickr30k,coco}.yaml``) run that baseline."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .base import METHODS
from .vl_tm import VLTMConfig, VLTrajectoryDistiller


@dataclass
class TESLAVLConfig(VLTMConfig):
    gradient: Literal["unrolled", "reverse", "tesla"] = "reverse"
    student: Literal["full", "heads"] = "full"
    loss: str = "infonce"


@METHODS.register("tesla-vl")
class TESLAVL(VLTrajectoryDistiller):
    name = "tesla-vl"
    Config = TESLAVLConfig
