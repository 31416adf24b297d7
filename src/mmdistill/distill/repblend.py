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

import torch
from torch import Tensor

from ..errors import ConfigError
from ..experts.buffers import ExpertConfig
from .base import METHODS
from .lors import LoRS, LoRSConfig


@dataclass
class RepBlendConfig(LoRSConfig):
    student: Literal["full", "heads"] = "heads"
    blend: bool = True  # representation blending (student "heads" only); False = LoRS on the heads
    blend_beta: float = 1.0  # λ ~ Beta(β, β); RepBlend alpha_2 = 1 (uniform)
    experts: ExpertConfig = field(default_factory=lambda: ExpertConfig(mode="heads"))


@METHODS.register("repblend")
class RepBlend(LoRS):
    """LoRS on the projection heads with representation blending: one λ ~ Beta(β, β) and one permutation π per
    inner step mix the pre-projection representations of both modalities (rᵛ = λ E(x̃) + (1−λ) E(x̃_π),
    rᵗ = λ ẽ + (1−λ) ẽ_π) against the unmixed S[B, B]; the draws are made before the inner loop and replayed by
    the reverse pass."""

    name = "repblend"
    Config = RepBlendConfig

    def _check(self) -> None:
        super()._check()
        if self.cfg.blend and self.cfg.student != "heads":
            raise ConfigError(f"{self.name}: blend (representation blending) needs student 'heads'")

    def draw_mix(self, mb: int) -> list[tuple[float, Tensor]]:
        c = self.cfg
        if not c.blend:
            return []
        beta = torch.distributions.Beta(torch.tensor(float(c.blend_beta)), torch.tensor(float(c.blend_beta)))
        return [(float(beta.sample()), torch.randperm(mb)) for _ in range(c.syn_steps)]

    def mix(self, step: int, img: Tensor, txt: Tensor) -> tuple[Tensor, Tensor]:
        if not self.cfg.blend:
            return img, txt
        lam, perm = self.mix_draws[step]
        return lam * img + (1.0 - lam) * img[perm], lam * txt + (1.0 - lam) * txt[perm]
