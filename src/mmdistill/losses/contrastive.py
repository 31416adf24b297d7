"""Contrastive losses, written once: used by the image-text distillers, expert training, the evaluation protocols
and DAVDD's bank (CLIP's symmetric InfoNCE, arXiv:2103.00020; LoRS's soft targets, Xu et al., ICML 2024).

Temperature convention (one convention, tested): logits = exp(log_scale) * cos(z_img, z_txt)
with ``log_scale = log(1 / tau)``. MTT-VL's reference code multiplies by ``log_scale`` itself
(effective scale 2.66 instead of 14.3 at tau = 0.07); ``scale_bug=True`` reproduces that for comparison.

Soft losses take logits ``z`` (B, B) and a soft target ``S`` (B, B) (LoRS's learned similarity block):

* ``wbce``  - weighted BCE: ½ (mean over S_ij > 0.5 of l_ij + mean over S_ij <= 0.5 of l_ij),
  l_ij = -S_ij log σ(z_ij) - (1 - S_ij) log(1 - σ(z_ij)); positives and negatives averaged separately;
* ``wbce-eps`` - the weighted BCE as LoRS's released ``MultilabelContrastiveLoss("WBCE")`` computes it:
  l_ij = -S_ij log(σ(z_ij) + 1e-6) - (1 - S_ij) log(1 - σ(z_ij) + 1e-6), and each half's sum divided by
  (count + 1e-6). Differs from ``wbce`` near saturation, where the 1e-6 bounds the loss and its gradient;
* ``bce``   - plain mean of l_ij;
* ``kl``    - KL(softmax(10 S) || softmax(z)) per row, symmetrised over rows and columns;
* ``infonce`` - soft InfoNCE: -Σ_j S_ij log softmax(z)_ij, mean over rows, symmetrised;
* ``cwcl``  - like ``infonce`` with row-normalised targets S_ij / Σ_j S_ij;
* ``mse``   - mean (σ(z) - S)².
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError


def log_scale_of(temperature: float) -> float:
    """``log(1 / tau)``: the stored parameter; the applied scale is ``exp`` of it."""
    return math.log(1.0 / float(temperature))


def contrastive_logits(z_img: Tensor, z_txt: Tensor, log_scale: float | Tensor, *, scale_bug: bool = False) -> Tensor:
    """(B, B) logits of L2-normalised embeddings; row i = image i, column j = text j.

    ``scale_bug=False``: ``exp(log_scale) * cos`` (experts, evaluation, LoRS, RepBlend).
    ``scale_bug=True``: ``log_scale * cos`` - MTT-VL's ``distill.py`` inner loop.
    """
    cos = F.normalize(z_img, dim=-1) @ F.normalize(z_txt, dim=-1).T
    ls = log_scale if isinstance(log_scale, Tensor) else torch.tensor(float(log_scale), dtype=cos.dtype, device=cos.device)
    return (ls if scale_bug else ls.exp()) * cos


def info_nce(logits: Tensor) -> Tensor:
    """Symmetric InfoNCE with identity targets: mean of image->text and text->image cross-entropy."""
    y = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y))


def _elementwise_bce(z: Tensor, s: Tensor) -> Tensor:
    return F.binary_cross_entropy_with_logits(z, s, reduction="none")


def wbce(z: Tensor, s: Tensor) -> Tensor:
    l = _elementwise_bce(z, s)
    pos = s > 0.5
    neg = ~pos
    zero = z.sum() * 0.0
    lp = l[pos].mean() if bool(pos.any()) else zero
    ln = l[neg].mean() if bool(neg.any()) else zero
    return 0.5 * (lp + ln)


def wbce_eps(z: Tensor, s: Tensor, eps: float = 1e-6) -> Tensor:
    p = torch.sigmoid(z)
    l = -s * torch.log(p + eps) - (1.0 - s) * torch.log(1.0 - p + eps)
    pos = (s > 0.5).detach()
    neg = ~pos
    lp = torch.where(pos, l, torch.zeros_like(l)).sum() / (pos.sum() + eps)
    ln = torch.where(neg, l, torch.zeros_like(l)).sum() / (neg.sum() + eps)
    return 0.5 * (lp + ln)


def bce(z: Tensor, s: Tensor) -> Tensor:
    return _elementwise_bce(z, s).mean()


def kl(z: Tensor, s: Tensor, sharpness: float = 10.0) -> Tensor:
    def one(zz: Tensor, ss: Tensor) -> Tensor:
        return F.kl_div(F.log_softmax(zz, dim=1), F.log_softmax(sharpness * ss, dim=1), reduction="batchmean", log_target=True)

    return 0.5 * (one(z, s) + one(z.T, s.T))


def soft_infonce(z: Tensor, s: Tensor) -> Tensor:
    return 0.5 * (-(s * F.log_softmax(z, dim=1)).sum(1).mean() - (s.T * F.log_softmax(z.T, dim=1)).sum(1).mean())


def cwcl(z: Tensor, s: Tensor, eps: float = 1e-8) -> Tensor:
    def norm(m: Tensor) -> Tensor:
        return m / (m.sum(1, keepdim=True) + eps)

    return 0.5 * (-(norm(s) * F.log_softmax(z, dim=1)).sum(1).mean() - (norm(s.T) * F.log_softmax(z.T, dim=1)).sum(1).mean())


def mse(z: Tensor, s: Tensor) -> Tensor:
    return ((torch.sigmoid(z) - s) ** 2).mean()


SOFT_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "wbce": wbce, "wbce-eps": wbce_eps, "bce": bce, "kl": kl, "infonce": soft_infonce, "cwcl": cwcl, "mse": mse,
}


def soft_loss(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    if name not in SOFT_LOSSES:
        raise ConfigError(f"unknown soft contrastive loss {name!r}; known: {', '.join(SOFT_LOSSES)}")
    return SOFT_LOSSES[name]
