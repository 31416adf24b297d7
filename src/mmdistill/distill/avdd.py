"""AVDD (Kushwaha et al., TMLR'24): two-modality DM + implicit cross-matching (ICM) + cross-modal gap matching (CGM).

Per class (the released code's loss), with the four class means
μa^r, μv^r (real) and μa^s, μv^s (synthetic)::

    L_c = ‖μa^r − μa^s‖² + ‖μv^r − μv^s‖²
        + λ_icm ‖(μa^r + μv^r) − (μa^s + μv^s)‖²
        + λ_cgm ‖(μa^r + μv^s) − (μv^r + μa^s)‖²

Identity: with Δa = μa^r − μa^s, Δv = μv^r − μv^s,
``L_c = (1+λ_icm+λ_cgm)(‖Δa‖²+‖Δv‖²) + 2(λ_icm−λ_cgm)⟨Δa,Δv⟩``, so with λ_icm = λ_cgm the AVDD loss is
exactly (1+λ_icm+λ_cgm)× the DM loss and AVDD equals DM at lr × (1+λ_icm+λ_cgm)
(:func:`dm_equivalent_lr`; bench label ``dm-avdd-lr`` is DM at that lr, a config, not code). Logged:
``da2`` = Σ_c‖Δa‖², ``dv2`` = Σ_c‖Δv‖², ``dadv`` = Σ_c⟨Δa,Δv⟩ and the two closed-form parts.
The audio and visual embeddings must have equal size (asserted with a clear ConfigError).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from .av_common import AVMatchConfig
from .base import METHODS
from .dm import DMAV


def dm_equivalent_lr(lr: float, lambda_icm: float, lambda_cgm: float) -> float:
    """The DM learning rate whose SGD trajectory equals AVDD's when λ_icm = λ_cgm (identity above)."""
    return float(lr) * (1.0 + float(lambda_icm) + float(lambda_cgm))


def avdd_loss(mu_ar: Tensor, mu_vr: Tensor, mu_as: Tensor, mu_vs: Tensor, lambda_icm: float, lambda_cgm: float
              ) -> tuple[Tensor, dict[str, Tensor]]:
    """AVDD's per-class loss written with the four class means, plus its parts for logging."""
    dm = ((mu_ar - mu_as) ** 2).sum() + ((mu_vr - mu_vs) ** 2).sum()
    icm = (((mu_ar + mu_vr) - (mu_as + mu_vs)) ** 2).sum()
    cgm = (((mu_ar + mu_vs) - (mu_vr + mu_as)) ** 2).sum()
    loss = dm + lambda_icm * icm + lambda_cgm * cgm
    da, dv = (mu_ar - mu_as).detach(), (mu_vr - mu_vs).detach()
    parts = {"dm": dm.detach(), "icm": icm.detach(), "cgm": cgm.detach(), "da2": (da ** 2).sum(), "dv2": (dv ** 2).sum(),
             "dadv": (da * dv).sum()}
    return loss, parts


def avdd_closed_form(da: Tensor, dv: Tensor, lambda_icm: float, lambda_cgm: float) -> Tensor:
    """(1+λi+λc)(‖Δa‖²+‖Δv‖²) + 2(λi−λc)⟨Δa,Δv⟩ (identity in the module docstring)."""
    return (1 + lambda_icm + lambda_cgm) * ((da ** 2).sum() + (dv ** 2).sum()) + 2 * (lambda_icm - lambda_cgm) * (da * dv).sum()


@dataclass
class AVDDConfig(AVMatchConfig):
    lambda_icm: float = 10.0  # AVDD released default
    lambda_cgm: float = 10.0


@METHODS.register("avdd")
class AVDD(DMAV):
    """DM-AV plus ICM and CGM."""

    name = "avdd"
    Config: ClassVar[type] = AVDDConfig

    def init_extra(self) -> None:
        super().init_extra()
        self.check_equal_dims(self.random_nets())

    def class_loss(self, mu_r: dict[str, Tensor], mu_s: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        loss, parts = avdd_loss(mu_r["audio"], mu_r["visual"], mu_s["audio"], mu_s["visual"], self.cfg.lambda_icm,
                                self.cfg.lambda_cgm)
        k = 1 + self.cfg.lambda_icm + self.cfg.lambda_cgm
        parts["scaled_dm_part"] = k * (parts["da2"] + parts["dv2"])
        parts["coupling_part"] = 2 * (self.cfg.lambda_icm - self.cfg.lambda_cgm) * parts["dadv"]
        return loss, parts
