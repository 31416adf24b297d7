"""C2KD (CVPR 2024), faithful to ``huofushuo/C2KD``.

Proxy heads on an intermediate tap of each backbone; cross-modal knowledge flows only through the
proxy-to-proxy non-target KL, on samples whose class rankings agree (Kendall tau-b > ``krc``). The teacher
is trainable (``trainable_teacher``): it keeps its CE and the proxy terms.

    L_T = CE(z_t, y) + KL(sg p(z_t) || p(q_t)) + KL(sg p(q_t) || p(z_t)) + NT(q_t <- sg q_s)
    L_S = CE(z_s, y) + KL(sg p(z_s) || p(q_s)) + KL(sg p(q_s) || p(z_s)) + NT(q_s <- sg q_t)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import KD_LOSSES, Dims, KDInputs, KDLoss


def kendall_tau_b(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise Kendall tau-b of (B, C) score matrices via pairwise sign products, (B,). 0 where undefined."""
    da = torch.sign(a.unsqueeze(2) - a.unsqueeze(1))
    db = torch.sign(b.unsqueeze(2) - b.unsqueeze(1))
    c = a.shape[1]
    n0 = float(c * (c - 1))  # ordered pairs i != j (each unordered pair counted twice, as in the numerator)
    num = (da * db).flatten(1).sum(1)
    ties_a = (da == 0).flatten(1).sum(1).to(num.dtype) - c  # minus the diagonal; counts in the input's precision
    ties_b = (db == 0).flatten(1).sum(1).to(num.dtype) - c
    den = torch.sqrt((n0 - ties_a) * (n0 - ties_b))
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.zeros_like(num))


def non_target_kl(u: Tensor, v: Tensor, y: Tensor, mask: Tensor, mask_value: float | None = 0.0) -> Tensor:
    """NT(u <- v) = (1/B) sum_i m_i KL(softmax(sg v_nt,i) || softmax(u_nt,i)), temperature 1.

    ``x_nt`` = x with the target logit replaced by ``mask_value`` (0 = the official quirk); ``None`` drops the
    target class altogether (softmax over the non-target classes only).
    """
    gt = F.one_hot(y, u.shape[1]).bool()
    v = v.detach()
    if mask_value is None:
        u_nt = u.masked_fill(gt, -1e9)
        v_nt = v.masked_fill(gt, -1e9)
    else:
        u_nt = u.masked_fill(gt, float(mask_value))
        v_nt = v.masked_fill(gt, float(mask_value))
    p = F.softmax(v_nt, dim=1)
    kl = (torch.xlogy(p, p) - p * F.log_softmax(u_nt, dim=1)).sum(1)
    return (mask.to(kl.dtype) * kl).sum() / u.shape[0]


def kl_to(target_logits: Tensor, logits: Tensor) -> Tensor:
    """KL(sg softmax(target) || softmax(logits)), 'batchmean'."""
    return F.kl_div(F.log_softmax(logits, 1), F.log_softmax(target_logits.detach(), 1), reduction="batchmean",
                    log_target=True)


class Proxy(nn.Module):
    """GAP (for maps) -> Linear(d, d) (= 1x1 conv on the pooled map) + BN + LeakyReLU(0.1) -> Linear(d, C)."""

    def __init__(self, d: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d), nn.LeakyReLU(0.1))
        self.fc = nn.Linear(d, num_classes)

    def forward(self, f: Tensor) -> Tensor:
        if f.dim() > 2:
            f = f.flatten(2).mean(2)
        return self.fc(self.body(f))


@dataclass
class C2KDConfig:
    """C2KD: ``krc`` Kendall threshold (0 official); ``mask_value`` 0 (official quirk) or null (drop the target)."""

    krc: float = 0.0
    mask_value: float | None = 0.0
    nt_weight: float = 1.0
    proxy_weight: float = 1.0


@KD_LOSSES.register("c2kd")
class C2KD(KDLoss):
    name = "c2kd"
    Config = C2KDConfig
    needs = frozenset({"mid"})
    trainable_teacher = True

    def __init__(self, cfg: C2KDConfig, dims: Dims, num_classes: int, seed: int = 0) -> None:
        super().__init__(cfg, dims, num_classes, seed)
        self.proxy_s = Proxy(dims.s_mid, num_classes)
        self.proxy_t = Proxy(dims.t_mid, num_classes)
        self.last_agree: float = 0.0

    def epoch_log(self) -> dict[str, float]:
        """Share of the last batch's samples whose proxies agree (Kendall tau-b above ``krc``)."""
        return {"kendall_agree_frac": self.last_agree}

    def forward(self, inp: KDInputs) -> dict[str, Tensor]:
        assert inp.s_mid is not None and inp.t_mid is not None
        c = self.cfg
        q_s, q_t = self.proxy_s(inp.s_mid), self.proxy_t(inp.t_mid)
        z_s, z_t, y = inp.s_logits, inp.t_logits, inp.y
        with torch.no_grad():
            m = (kendall_tau_b(q_t.detach(), q_s.detach()) > c.krc).float()
        self.last_agree = float(m.mean())
        return {
            "ce": F.cross_entropy(z_s, y),
            "proxy_s": c.proxy_weight * (kl_to(z_s, q_s) + kl_to(q_s, z_s)),
            "nt_s": c.nt_weight * non_target_kl(q_s, q_t, y, m, c.mask_value),
            "ce_t": F.cross_entropy(z_t, y),
            "proxy_t": c.proxy_weight * (kl_to(z_t, q_t) + kl_to(q_t, z_t)),
            "nt_t": c.nt_weight * non_target_kl(q_t, q_s, y, m, c.mask_value),
        }
