"""Feature-level KD: FitNet/Feat and PKD on the pooled penultimate feature.

The student feature goes through a learned ``Linear(D_s, D_t)`` projector when the widths differ
(identity when they match, as in FD-CMKD's "Feat" row; ``always_project`` forces a learned one).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .base import KD_LOSSES, Dims, KDInputs, KDLoss


def feat_mse(f_s: Tensor, f_t: Tensor) -> Tensor:
    """mean((f_s - f_t)^2) over every element."""
    return ((f_s - f_t) ** 2).mean()


def channel_standardize(f: Tensor, eps: float = 1e-6) -> Tensor:
    """Each channel to zero mean / unit (population) std over the batch (and space for maps)."""
    dims = [0] + list(range(2, f.dim()))
    mu = f.mean(dim=dims, keepdim=True)
    sd = f.var(dim=dims, keepdim=True, unbiased=False).add(eps).sqrt()
    return (f - mu) / sd


def pkd_mse(f_s: Tensor, f_t: Tensor) -> Tensor:
    """PKD: MSE between channel-standardised features (= 2*(1 - mean per-channel Pearson r))."""
    return feat_mse(channel_standardize(f_s), channel_standardize(f_t))


def make_projector(d_s: int, d_t: int, always: bool) -> nn.Module:
    if d_s == d_t and not always:
        return nn.Identity()
    return nn.Linear(d_s, d_t)


@dataclass
class FitNetConfig:
    """Feat/FitNet: CE + weight*MSE(r(f_s), f_t). weight 1 reproduces FD-CMKD's 'Feat' (vectors, same D);
    mdistiller's FitNet uses 100 on maps."""

    weight: float = 1.0
    always_project: bool = False


@KD_LOSSES.register("fitnet")
class FitNet(KDLoss):
    name = "fitnet"
    Config = FitNetConfig
    needs = frozenset({"feat"})

    def __init__(self, cfg: FitNetConfig, dims: Dims, num_classes: int, seed: int = 0) -> None:
        super().__init__(cfg, dims, num_classes, seed)
        self.proj = make_projector(dims.s_feat, dims.t_feat, cfg.always_project)

    def forward(self, inp: KDInputs) -> dict[str, Tensor]:
        assert inp.s_feat is not None and inp.t_feat is not None
        return {"ce": self.task_ce(inp), "feat": self.cfg.weight * feat_mse(self.proj(inp.s_feat), inp.t_feat)}


@dataclass
class PKDConfig:
    """PKD: CE + weight*MSE of per-channel standardised r(f_s) and f_t (mmrazor-style ``norm`` then MSE)."""

    weight: float = 1.0
    always_project: bool = False


@KD_LOSSES.register("pkd")
class PKD(KDLoss):
    name = "pkd"
    Config = PKDConfig
    needs = frozenset({"feat"})

    def __init__(self, cfg: PKDConfig, dims: Dims, num_classes: int, seed: int = 0) -> None:
        super().__init__(cfg, dims, num_classes, seed)
        self.proj = make_projector(dims.s_feat, dims.t_feat, cfg.always_project)

    def forward(self, inp: KDInputs) -> dict[str, Tensor]:
        assert inp.s_feat is not None and inp.t_feat is not None
        return {"ce": self.task_ce(inp), "pkd": self.cfg.weight * pkd_mse(self.proj(inp.s_feat), inp.t_feat)}
