"""Entropic optimal transport by log-domain Sinkhorn iterations (Cuturi, NeurIPS 2013, arXiv:1306.0895).

For a cost Γ (n, m) and marginals a (n), b (m) (uniform by default), the plan

    T = diag(eᶠ) · exp(−Γ/ε) · diag(eᵍ),   T𝟙 = a,  Tᵀ𝟙 = b  (at convergence)

is found by alternating the dual updates in log space, which stays finite for small ε:

    f ← log a − logsumexp_j(g_j − Γ_ij/ε),   g ← log b − logsumexp_i(f_i − Γ_ij/ε).

After the last g-update the column marginals hold exactly; the row marginals converge geometrically. The updates
are differentiable (``detach_plan=False`` keeps the unrolled graph), as RAHA's relevance matching uses them
(Jeong et al., arXiv:2606.29464).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError


def sinkhorn_log(cost: Tensor, eps: float = 0.05, iters: int = 20, a: Tensor | None = None,
                 b: Tensor | None = None) -> Tensor:
    """Transport plan T (n, m) of the entropic OT problem with cost ``cost`` and marginals ``a``, ``b``."""
    if cost.dim() != 2:
        raise ConfigError(f"sinkhorn cost must be an (n, m) matrix, got shape {tuple(cost.shape)}")
    if eps <= 0 or iters < 1:
        raise ConfigError(f"sinkhorn needs eps > 0 and iters >= 1, got eps={eps}, iters={iters}")
    n, m = cost.shape
    log_a = torch.full((n,), -math.log(n), dtype=cost.dtype) if a is None else a.log()
    log_b = torch.full((m,), -math.log(m), dtype=cost.dtype) if b is None else b.log()
    k = -cost / eps
    f = torch.zeros(n, dtype=cost.dtype)
    g = torch.zeros(m, dtype=cost.dtype)
    for _ in range(iters):
        f = log_a - torch.logsumexp(k + g[None, :], dim=1)
        g = log_b - torch.logsumexp(k + f[:, None], dim=0)
    return torch.exp(k + f[:, None] + g[None, :])


def transport_cost(cost: Tensor, eps: float = 0.05, iters: int = 20, detach_plan: bool = False) -> Tensor:
    """⟨T, Γ⟩ = Σ T_ij Γ_ij with T from :func:`sinkhorn_log` (T detached if ``detach_plan``)."""
    plan = sinkhorn_log(cost.detach() if detach_plan else cost, eps, iters)
    return (plan * cost).sum()
