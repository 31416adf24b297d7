"""FD-CMKD (arXiv 2511.19887, AAAI 2026), faithful to the public code.

On pooled penultimate features f_s (student, trainable) and f_t (teacher, detached):

* band split along channels (:mod:`mmdistill.kd.fft_bands`): low = rfft bins 1..c, high = c+1..K-1,
  c = round(split_ratio * (K-1)); DC excluded unless ``keep_dc``; inverse with ``n=D``;
* ``L_low  = mean_{B,D} (N(s_low)  - N(t_low))^2``                    (normalised MSE)
* ``L_high = mean_{B,D} (psi(N(s_high)) - psi(N(t_high)))^2``, psi(x) = sign(x) log1p|x|  ("logMSE")
* shared heads Phi_low, Phi_high (ReLU -> Linear(D_t, C)) fed by BOTH networks' raw band features:
  ``L_align = CE(Phi_low(s_low)) + CE(Phi_low(t_low)) + CE(Phi_high(s_high)) + CE(Phi_high(t_high))``;
* ``L_task = CE(g(student)) [+ CE(Psi_low(s_low)) + CE(Psi_high(s_high))]`` (aux heads: the code's extra
  student heads, ``aux_task_heads``); only the student's own head ``g`` is evaluated (main head).
* ``L = L_task + w_align L_align + lambda_low L_low + lambda_high L_high``, all weights 1 by default.

Settings used as controls:

* ``channel_permutation_control``: one fixed random channel permutation (same for both networks) before the
  FFT, so "low" and "high" become random complementary subspaces with no frequency meaning;
* heads-only: ``lambda_low = lambda_high = 0`` (the shared and aux heads without any feature alignment).

**Learnable split (our extension, not in the paper or its code).** The paper leaves adaptive thresholds
open; its code's masks are frozen parameters binarised at 0.5. ``learnable_split=True`` replaces the binary
masks by a sigmoid soft mask ``low[k] = sigmoid((cut + 0.5 - k) / split_temperature)`` (high = 1 - low on the
AC bins) with a learned cut point ``cut = 0.5 + sigmoid(theta) (K - 1)`` initialised at ``split_ratio``;
``theta`` is trained with the heads by the same total loss. Nothing in the loss keeps the cut away from the
ends, so read the learned cut (logged as ``cut``) as an observation, not a guarantee.

If D_s != D_t a student-side ``Linear(D_s, D_t)`` projector precedes the split (non-official extension).

Which feature: the paper distils the pooled pre-ReLU output of the last block. The public code's BasicBlock
returns ``pre_out = out`` and then applies an in-place ReLU to ``out``, so the "pre-ReLU" tensor it aligns is
the post-ReLU map, whose global average is also what its classifier reads. The tap is a config field
(``feat_tap``): ``layer4`` (pre-ReLU, the paper) or ``relu4`` (post-ReLU, the code as run) on ResNet-18.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..seed import derive_seed
from .base import KD_LOSSES, Dims, FinalProbe, KDInputs, KDLoss
from .fft_bands import apply_masks, band_masks, cut_index, l2_normalize, num_bins, signed_log1p, soft_band_masks
from .similarity import mean_cos


def band_distance(a: Tensor, b: Tensor, kind: str = "mse", reduction: str = "mean") -> Tensor:
    """MSE (``kind="mse"``) or MSE after psi (``"logmse"``); mean over B*D or sum over D / mean over B."""
    if kind == "logmse":
        a, b = signed_log1p(a), signed_log1p(b)
    elif kind != "mse":
        raise ValueError(f"unknown band loss {kind!r}")
    sq = (a - b) ** 2
    return sq.mean() if reduction == "mean" else sq.sum(1).mean()


def fd_losses(s_feat: Tensor, t_feat: Tensor, low_mask: Tensor, high_mask: Tensor, *, scale: bool = True,
              low_loss: str = "mse", high_loss: str = "logmse", reduction: str = "mean") -> dict[str, Tensor]:
    """The two distillation terms and the four band features (teacher side detached)."""
    s_low, s_high = apply_masks(s_feat, low_mask, high_mask)
    t_low, t_high = apply_masks(t_feat.detach(), low_mask, high_mask)
    norm = l2_normalize if scale else (lambda z: z)
    return {
        "low": band_distance(norm(s_low), norm(t_low).detach(), low_loss, reduction),
        "high": band_distance(norm(s_high), norm(t_high).detach(), high_loss, reduction),
        "s_low": s_low, "s_high": s_high, "t_low": t_low.detach(), "t_high": t_high.detach(),
    }


def _head(d: int, c: int) -> nn.Module:
    return nn.Sequential(nn.ReLU(), nn.Linear(d, c))


@dataclass
class FDCMKDConfig:
    """FD-CMKD. Defaults = the public code ("official" preset) except where noted.

    split_ratio: low band = first ``split_ratio`` of the non-DC bins (1/2 in the code).
    keep_dc: put bin 0 in the low band (analysis-notebook variant); False in training.
    learnable_split / split_temperature: our extension (module docstring).
    lambda_low / lambda_high / w_align: loss weights (1 in the code); heads-only control = lambdas 0.
    aux_task_heads: the code's two extra student-only heads on the bands (True in the code).
    scale: L2-normalise the bands inside L_low / L_high (the "Scale" ablation column).
    low_loss / high_loss: "mse" or "logmse" (code: mse low, logmse high).
    reduction: "mean" over B*D (code) or "sum" over D (a D times larger distillation gradient).
    channel_permutation_control: fixed random channel permutation before the FFT (control).
    permutation_seed: seed of that permutation (None: derived from the run seed).
    """

    split_ratio: float = 0.5
    keep_dc: bool = False
    learnable_split: bool = False
    split_temperature: float = 1.0
    lambda_low: float = 1.0
    lambda_high: float = 1.0
    w_align: float = 1.0
    aux_task_heads: bool = True
    scale: bool = True
    low_loss: Literal["mse", "logmse"] = "mse"
    high_loss: Literal["mse", "logmse"] = "logmse"
    reduction: Literal["mean", "sum"] = "mean"
    channel_permutation_control: bool = False
    permutation_seed: int | None = None


@KD_LOSSES.register("fd-cmkd")
class FDCMKD(KDLoss):
    name = "fd-cmkd"
    Config = FDCMKDConfig
    needs = frozenset({"feat"})

    def __init__(self, cfg: FDCMKDConfig, dims: Dims, num_classes: int, seed: int = 0) -> None:
        super().__init__(cfg, dims, num_classes, seed)
        d = dims.t_feat
        self.proj: nn.Module = nn.Identity() if dims.s_feat == d else nn.Linear(dims.s_feat, d)
        self.phi_low, self.phi_high = _head(d, num_classes), _head(d, num_classes)
        if cfg.aux_task_heads:
            self.psi_low, self.psi_high = _head(d, num_classes), _head(d, num_classes)
        low, high = band_masks(d, cfg.split_ratio, cfg.keep_dc)
        self.register_buffer("low_mask", low)
        self.register_buffer("high_mask", high)
        if cfg.channel_permutation_control:
            ps = cfg.permutation_seed if cfg.permutation_seed is not None else derive_seed("fd-cmkd-perm", seed)
            g = torch.Generator().manual_seed(int(ps))
            self.register_buffer("perm", torch.randperm(d, generator=g))
        else:
            self.perm = None
        if cfg.learnable_split:
            k = num_bins(d)
            frac = (cut_index(d, cfg.split_ratio) - 0.5) / max(k - 1, 1)
            frac = min(max(frac, 1e-3), 1 - 1e-3)
            self.cut_logit = nn.Parameter(torch.tensor(math.log(frac / (1 - frac))))

    def cut(self) -> Tensor:
        k = num_bins(self.dims.t_feat)
        return 0.5 + torch.sigmoid(self.cut_logit) * (k - 1)

    def masks(self) -> tuple[Tensor, Tensor]:
        if self.cfg.learnable_split:
            return soft_band_masks(self.dims.t_feat, self.cut(), self.cfg.split_temperature, self.cfg.keep_dc)
        return self.low_mask, self.high_mask

    def forward(self, inp: KDInputs) -> dict[str, Tensor]:
        assert inp.s_feat is not None and inp.t_feat is not None
        c, y = self.cfg, inp.y
        f_s, f_t = self.proj(inp.s_feat), inp.t_feat.detach()
        if self.perm is not None:
            f_s, f_t = f_s[:, self.perm], f_t[:, self.perm]
        lm, hm = self.masks()
        fd = fd_losses(f_s, f_t, lm, hm, scale=c.scale, low_loss=c.low_loss, high_loss=c.high_loss,
                       reduction=c.reduction)
        out = {"ce": self.task_ce(inp)}
        if c.aux_task_heads:
            out["ce_aux_low"] = F.cross_entropy(self.psi_low(fd["s_low"]), y)
            out["ce_aux_high"] = F.cross_entropy(self.psi_high(fd["s_high"]), y)
        if c.w_align:
            out["align_low"] = c.w_align * (F.cross_entropy(self.phi_low(fd["s_low"]), y)
                                            + F.cross_entropy(self.phi_low(fd["t_low"]), y))
            out["align_high"] = c.w_align * (F.cross_entropy(self.phi_high(fd["s_high"]), y)
                                             + F.cross_entropy(self.phi_high(fd["t_high"]), y))
        out["low"] = c.lambda_low * fd["low"]
        out["high"] = c.lambda_high * fd["high"]
        return out

    def epoch_log(self) -> dict[str, float]:
        return {"cut": float(self.cut().detach())} if self.cfg.learnable_split else {}

    @torch.no_grad()
    def final_report(self, probe: FinalProbe) -> dict[str, Any]:
        """Mean test-pair cosine between the student's and the teacher's band features, in the space the loss
        aligns (after the projector and the control permutation): shows whether alignment happened."""
        self.eval()
        dev = next(self.parameters()).device
        f_s = self.proj(probe.student_feat().to(dev)).cpu()
        f_t = probe.teacher_feat()
        if self.perm is not None:
            f_s, f_t = f_s[:, self.perm.cpu()], f_t[:, self.perm.cpu()]
        lm, hm = (m.detach().cpu() for m in self.masks())
        s_low, s_high = apply_masks(f_s, lm, hm)
        t_low, t_high = apply_masks(f_t, lm, hm)
        out: dict[str, Any] = {"band_cos_low": mean_cos(s_low, t_low), "band_cos_high": mean_cos(s_high, t_high)}
        if self.cfg.learnable_split:
            out["final_cut"] = float(self.cut().detach())
        return out

    def describe(self) -> dict:
        d = super().describe()
        d["cut_bin"] = (float(self.cut().detach()) if self.cfg.learnable_split else cut_index(self.dims.t_feat, self.cfg.split_ratio))
        d["bins"] = num_bins(self.dims.t_feat)
        return d
