"""Layer-wise Model-Stock merge of two fine-tuned checkpoints against an anchor (MDM's mixed teacher).

MDM (arXiv 2605.23482) Eq. 5; public code ``compute_cosine_dict`` / ``compute_ratio_from_cos`` /
``fast_merge`` in ``andyj1/mdm`` ``distill_mdm.py``. Per layer ℓ (one parameter tensor, as the code's
state-dict keys), with Δᵢ = θᵢ − θ₀:

    cos φ_ℓ = ⟨Δ₁, Δ₂⟩ / (‖Δ₁‖‖Δ₂‖ + eps)                     (clamped to [−1, 1])
    t_ℓ     = k cos φ / ((k − 1) cos φ + 1 + eps),  k = 2  →  2 cos φ / (1 + cos φ)
    θ*_ℓ    = θ₀,ℓ + α · t_ℓ · ½(Δ₁ + Δ₂)                    (α = 0.5 in the paper, 1.0 the code's argparse default)

Identities: Δ₁ = Δ₂ ⇒ t = 1 and θ* = θ₀ + αΔ; Δ₁ ⟂ Δ₂ ⇒ t = 0 and θ* = θ₀; a layer that neither checkpoint
moved (Δ = 0) keeps θ₀. For cos φ → −1 the ratio diverges like the formula (the product t·½(Δ₁+Δ₂) stays
bounded when ‖Δ₁‖ = ‖Δ₂‖); nothing is clamped beyond the code's eps.

Parameters are flat vectors (the expert-buffer format, :mod:`mmdistill.experts.buffers`) split into layers
by ``numels`` (the buffer's parameter order).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..errors import ConfigError

EPS = 1e-8


def layer_cosines(d1: Tensor, d2: Tensor, numels: Sequence[int], eps: float = EPS) -> Tensor:
    """Per-layer cosine of two flat difference vectors (one entry per layer)."""
    out = []
    for a, b in zip(d1.split(list(numels)), d2.split(list(numels))):
        dot = torch.dot(a.double(), b.double())
        out.append((dot / (a.double().norm() * b.double().norm() + eps)).clamp(-1.0, 1.0))
    return torch.stack(out).to(d1.dtype)


def stock_ratio(cos: Tensor, k: int = 2, eps: float = EPS) -> Tensor:
    """Model-Stock interpolation ratio t = k cos / ((k − 1) cos + 1) for k fine-tuned models."""
    return (k * cos) / ((k - 1) * cos + 1.0 + eps)


def model_stock_merge(theta1: Tensor, theta2: Tensor, anchor: Tensor, numels: Sequence[int], alpha: float = 0.5,
                      eps: float = EPS) -> tuple[Tensor, Tensor]:
    """Merged flat vector θ* and the per-layer ratios t (see the module docstring)."""
    if not (theta1.shape == theta2.shape == anchor.shape) or theta1.dim() != 1:
        raise ConfigError(f"model_stock_merge needs three flat vectors of one size, got {tuple(theta1.shape)}, "
                          f"{tuple(theta2.shape)}, {tuple(anchor.shape)}")
    if sum(numels) != anchor.numel():
        raise ConfigError(f"model_stock_merge: layer sizes sum to {sum(numels)}, the vectors hold {anchor.numel()}")
    d1, d2 = theta1 - anchor, theta2 - anchor
    t = stock_ratio(layer_cosines(d1, d2, numels, eps), 2, eps)
    scale = torch.repeat_interleave(t, torch.as_tensor(list(numels), device=t.device))
    return anchor + alpha * scale * 0.5 * (d1 + d2), t
