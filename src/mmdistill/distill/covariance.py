"""Cross-covariance statistics of paired features and CovMatch's closed-form linear-contrastive solution.

Notation (CovMatch, Lee & Chung, arXiv:2510.18583): for n pairs of encoder outputs hᵛᵢ ∈ ℝ^{d_v}, hˡᵢ ∈ ℝ^{d_l},

    C = 1/(n−1) · Σᵢ (hᵛᵢ − μᵛ)(hˡᵢ − μˡ)ᵀ                                    (d_v × d_l)

**Linear contrastive loss** (Nakada et al., arXiv:2302.06232), over linear projections G_v (r×d_v), G_l (r×d_l):

    L_lin(G) = −Tr(G_v C G_lᵀ) + (ρ/2)·‖G_vᵀ G_l‖²_F

It depends on G only through M = G_vᵀG_l; its minimiser is M* = C/ρ when r ≥ rank(C), and the rank-r truncated
SVD of C divided by ρ otherwise (Eckart–Young). It is the high-temperature limit of CLIP's symmetric InfoNCE:
τ·(InfoNCE − log n) → −((n−1)/n)·Tr(G_v C G_lᵀ) as τ → ∞ (tests/test_covmatch_maths.py checks both).

**Covariance matching** (CovMatch's outer objective): substituting M* = C_S/ρ, fitted on the synthetic set, into the
real-data loss gives (‖ρC_T − C_S‖²_F − ρ²‖C_T‖²_F)/(2ρ²), i.e. up to a constant and a factor

    L_cov = ‖ρ·C_T − C_S‖²_F.

**Rank split** (RAHA, Jeong et al., arXiv:2606.29464): the SVD C = UΣVᵀ, the smallest k whose leading squared
singular values hold a fraction ``energy`` of Σσ², and the projections onto span(U_k) / span(V_k) ("range") and
their orthogonal complements ("residual").
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError


def _check_pairs(a: Tensor, b: Tensor, what: str) -> None:
    if a.dim() != 2 or b.dim() != 2 or a.shape[0] != b.shape[0]:
        raise ConfigError(f"{what} needs two (n, d) matrices with the same n, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[0] < 2:
        raise ConfigError(f"{what} needs at least 2 pairs, got {a.shape[0]}")


def cross_covariance(h_v: Tensor, h_l: Tensor, centered: bool = True) -> Tensor:
    """(d_v, d_l) cross-covariance 1/(n−1) Σ (hᵛ − μᵛ)(hˡ − μˡ)ᵀ (``centered=False``: 1/n Σ hᵛ hˡᵀ)."""
    _check_pairs(h_v, h_l, "cross_covariance")
    n = h_v.shape[0]
    if centered:
        return (h_v - h_v.mean(0)).T @ (h_l - h_l.mean(0)) / (n - 1)
    return h_v.T @ h_l / n


def linear_contrastive_loss(g_v: Tensor, g_l: Tensor, c: Tensor, rho: float) -> Tensor:
    """L_lin = −Tr(G_v C G_lᵀ) + (ρ/2)‖G_vᵀ G_l‖²_F for projections G_v (r, d_v), G_l (r, d_l)."""
    m = g_v.T @ g_l
    return -(m * c).sum() + 0.5 * rho * (m * m).sum()


def linear_contrastive_solution(c: Tensor, rho: float, rank: int | None = None) -> Tensor:
    """The minimiser M* = G_vᵀG_l of :func:`linear_contrastive_loss`: C/ρ, or the rank-``rank`` truncated SVD over ρ."""
    if rho <= 0:
        raise ConfigError(f"rho must be > 0, got {rho}")
    if rank is None or rank >= min(c.shape):
        return c / rho
    u, s, vh = torch.linalg.svd(c, full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vh[:rank] / rho


def covariance_matching_loss(c_real: Tensor, c_syn: Tensor, rho: float) -> Tensor:
    """L_cov = ‖ρ·C_T − C_S‖²_F (C_T from the real batch, C_S from the synthetic one)."""
    if c_real.shape != c_syn.shape:
        raise ConfigError(f"covariance shapes differ: {tuple(c_real.shape)} vs {tuple(c_syn.shape)}")
    d = rho * c_real - c_syn
    return (d * d).sum()


def mean_feature_loss(real: Tensor, syn: Tensor) -> Tensor:
    """‖mean of the real rows − mean of the synthetic rows‖²₂ (linear-kernel MMD²)."""
    d = real.mean(0) - syn.mean(0)
    return (d * d).sum()


def energy_rank(singular_values: Tensor, energy: float, tol: float = 1e-6) -> int:
    """Smallest k with Σ_{i≤k} σᵢ² ≥ (energy − tol)·Σ σᵢ² (σ sorted descending); at least 1."""
    if not 0.0 < energy <= 1.0:
        raise ConfigError(f"energy must be in (0, 1], got {energy}")
    e = singular_values.detach().double() ** 2
    total = float(e.sum())
    if total <= 0:
        return 1
    frac = torch.cumsum(e, 0) / total
    return max(1, int((frac < energy - tol).sum()) + 1)


def range_basis(c: Tensor, energy: float, jitter: float = 0.0) -> tuple[Tensor, Tensor, Tensor, int]:
    """(U_k, V_k, σ, k) of C + jitter·I (detached): the leading left/right singular vectors holding ``energy``."""
    c = c.detach()
    if jitter > 0:
        c = c + jitter * torch.eye(c.shape[0], c.shape[1], dtype=c.dtype)
    u, s, vh = torch.linalg.svd(c, full_matrices=False)
    k = energy_rank(s, energy)
    return u[:, :k], vh[:k].T, s, k


def split_range_residual(x: Tensor, basis: Tensor) -> tuple[Tensor, Tensor]:
    """(coordinates Bᵀx in the range, residual x − BBᵀx) of the rows of ``x`` for an orthonormal basis B (d, k)."""
    a = x @ basis
    return a, x - a @ basis.T
