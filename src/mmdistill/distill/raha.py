"""RAHA: rank-aware hyperbolic alignment for vision-language dataset distillation (Jeong, Lee & Yoon, ECCV 2026,
arXiv:2606.29464). Method ``raha``.

Same encoders, online proxy and schedule as CovMatch (:mod:`.proxy_match`); only the loss differs. One step:

    z ← G·h (projected features);  x ← exp_o(s·z) on the Lorentz hyperboloid (curvature c);  u ← log_o(x)
    L_hITC: symmetric InfoNCE of the synthetic pairs with logits −d_c(x̃ᵛᵢ, x̃ᵗⱼ)/τ
    C_real ← crosscov(uᵛ_real, uᵗ_real) + jitter;  SVD;  k ← smallest rank holding ``rank_energy`` of Σσ²
    range coordinates U_kᵀuᵛ, V_kᵀuᵗ; residuals uᵛ − U_kU_kᵀuᵛ, uᵗ − V_kV_kᵀuᵗ        (basis detached)
    per part X: relevance rows P = softmax(sim/τ_r); cost Γᵢⱼ = KL(P_syn,i ‖ P_real,j) / mean(Γ);
                Sinkhorn plan T (ε, iterations);  L_match^X = ⟨T, Γ⟩, mean over image→text and text→image rows
    L_reg^range = max(0, e_real − e_syn)/(e_real + ε)           (energy floor on the range)
    L_reg^res  = ρ_r + max(0, ρ_r − 1),  ρ_r = e_res/(e_syn + ε)  (compression of the residual)
    L = L_hITC + λ_range·(L_match^range + L_reg^range) + λ_residual·(L_match^res + λ_comp·L_reg^res)

Published defaults (andyj1/raha README; paper Table A2/A3 per its text): c = 1, s = 1, τ = τ_r = 0.07,
ρ_E = 0.95, ε = 0.05, 20 Sinkhorn iterations, λ_range 0.8, λ_residual 0.4, λ_comp 0.1, |B| = |B̃| = 64, lr 1.0.

Choices the sources leave open, each a field with the recommended default [unverified]:

* ``columns``: ``real_anchor`` (default) = relevance rows of synthetic images against the *real* texts, compared
  with rows of real images against the same real texts (and vice versa), which is permutation-invariant and works
  for any |B̃|; ``batch`` = synthetic rows over synthetic columns against real rows over real columns (needs
  |B̃| = |B|; the README's setting);
* ``relevance_sim``: ``geodesic`` (default; −d_c after re-lifting the part's coordinates) or ``dot`` (tangent dot
  product);
* ``kl_direction``: ``syn_real`` (default) = KL(P_syn ‖ P_real), or ``real_syn``;
* ``detach_plan``: the Sinkhorn plan is differentiated through its unrolled iterations (False, default) or held fixed;
* energies: e_syn = ‖U_kᵀC_syn V_k‖²_F, e_real = Σ_{i≤k} σᵢ², e_res = ‖C_syn‖²_F − e_syn (C_syn the synthetic
  tangent cross-covariance, centred like CovMatch's);
* ``jitter``: diagonal jitter added to C_real before the SVD;
* ``normalize``: L2-normalise the projected features before the lift (True, default) or lift G·h as it is (the
  formulas as the notes write them). The proxy's contrastive loss uses cosine logits, so the scale of G·h is free;
  with ``normalize`` every point lies at geodesic radius s from the origin and −d_c/τ is bounded like CLIP's cos/τ.
  Unnormalised, the geodesic logits saturate (hITC above log |B̃|) and the emoji validation r_mean fell below the
  initialisation at every lr tried (benchmarks/studies/covmatch_raha).

Geometry note: log_o ∘ exp_o is the identity, so the SVD sees s·z; only hITC and the geodesic relevance are
hyperbolic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from .base import METHODS
from .covariance import cross_covariance, range_basis, split_range_residual
from .lorentz import distance, expmap0, logmap0
from ..losses.contrastive import info_nce
from .online_proxy import ProxyConfig
from .proxy_match import ProxyMatchConfig, ProxyMatchDistiller
from .sinkhorn import transport_cost


@dataclass
class RAHAConfig(ProxyMatchConfig):
    batch_real: int = 64  # |B| (README --batch_size_train 64)
    batch_syn: int = 64  # |B̃| (Table A9)
    curvature: float = 1.0  # c
    lift_scale: float = 1.0  # s
    tau_hitc: float = 0.07  # τ of the geodesic InfoNCE
    tau_relevance: float = 0.07  # τ_r of the relevance rows
    rank_energy: float = 0.95  # ρ_E
    sinkhorn_eps: float = 0.05  # ε
    sinkhorn_iters: int = 20
    lambda_range: float = 0.8
    lambda_residual: float = 0.4
    lambda_comp: float = 0.1
    columns: Literal["real_anchor", "batch"] = "real_anchor"  # [unverified] see the module docstring
    relevance_sim: Literal["geodesic", "dot"] = "geodesic"  # [unverified]
    kl_direction: Literal["syn_real", "real_syn"] = "syn_real"  # [unverified]
    detach_plan: bool = False  # [unverified] unrolled Sinkhorn (False) or a fixed plan
    jitter: float = 1e-6  # [unverified] diagonal jitter of C_real before the SVD
    energy_eps: float = 1e-8  # ε in the regularisers' denominators
    normalize: bool = True  # [unverified] L2-normalise G·h before the lift (see the module docstring)
    proxy: ProxyConfig = field(default_factory=lambda: ProxyConfig(batch_size=64))


def relevance_rows(a: Tensor, b: Tensor, tau: float, sim: str, c: float) -> Tensor:
    """Row-softmax of the similarities of the rows of ``a`` to the rows of ``b`` at temperature ``tau``."""
    s = -distance(expmap0(a, c), expmap0(b, c), c) if sim == "geodesic" else a @ b.T
    return F.softmax(s / tau, dim=1)


def kl_rows(p: Tensor, q: Tensor, eps: float = 1e-12) -> Tensor:
    """(n, m) matrix KL(pᵢ ‖ qⱼ) between the rows of two row-stochastic matrices with the same columns."""
    lp, lq = (p + eps).log(), (q + eps).log()
    return (p * lp).sum(1, keepdim=True) - p @ lq.T


def energy_regularisers(c_syn: Tensor, u_k: Tensor, v_k: Tensor, e_real: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """(range floor, residual compression) from the synthetic cross-covariance and the real range basis."""
    e_syn = (u_k.T @ c_syn @ v_k).pow(2).sum()
    e_res = c_syn.pow(2).sum() - e_syn
    floor = F.relu(e_real - e_syn) / (e_real + eps)
    r = e_res / (e_syn + eps)
    return floor, r + F.relu(r - 1.0)


@METHODS.register("raha")
class RAHA(ProxyMatchDistiller):
    name = "raha"
    Config: ClassVar[type] = RAHAConfig

    def _check(self) -> None:
        super()._check()
        c = self.cfg
        if c.curvature <= 0 or c.lift_scale <= 0 or c.tau_hitc <= 0 or c.tau_relevance <= 0:
            raise ConfigError("raha: curvature, lift_scale, tau_hitc and tau_relevance must be > 0")
        if c.columns not in ("real_anchor", "batch") or c.relevance_sim not in ("geodesic", "dot") \
                or c.kl_direction not in ("syn_real", "real_syn"):
            raise ConfigError("raha: columns must be real_anchor|batch, relevance_sim geodesic|dot, kl_direction syn_real|real_syn")
        if c.columns == "batch" and min(c.batch_syn, self.budget.value) != c.batch_real:
            raise ConfigError(f"raha: columns 'batch' needs |B̃| = |B| (min(batch_syn, pairs) = "
                              f"{min(c.batch_syn, self.budget.value)}, batch_real = {c.batch_real}); use 'real_anchor'")

    def lift(self, images: Tensor, texts: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Hyperboloid points (x_v, x_t) and tangent features (u_v, u_t) of a batch."""
        m, c = self.proxy.model, self.cfg
        z_v, z_t = m.project(*m.features(images, texts))
        if c.normalize:
            z_v, z_t = F.normalize(z_v, dim=1), F.normalize(z_t, dim=1)
        x_v, x_t = expmap0(c.lift_scale * z_v, c.curvature), expmap0(c.lift_scale * z_t, c.curvature)
        return x_v, x_t, logmap0(x_v, c.curvature), logmap0(x_t, c.curvature)

    def match(self, real: tuple[Tensor, Tensor], syn: tuple[Tensor, Tensor]) -> Tensor:
        """OT relevance matching of one subspace's (image, text) coordinates, mean of both row directions."""
        c = self.cfg
        (rv, rt), (sv, st) = real, syn
        losses = []
        for r_q, r_k, s_q, s_k in ((rv, rt, sv, st), (rt, rv, st, sv)):
            with torch.no_grad():
                p_real = relevance_rows(r_q, r_k, c.tau_relevance, c.relevance_sim, c.curvature)
            keys = r_k if c.columns == "real_anchor" else s_k
            p_syn = relevance_rows(s_q, keys, c.tau_relevance, c.relevance_sim, c.curvature)
            cost = kl_rows(p_syn, p_real) if c.kl_direction == "syn_real" else kl_rows(p_real, p_syn).T
            cost = cost / cost.detach().mean().clamp_min(1e-12)
            losses.append(transport_cost(cost, c.sinkhorn_eps, c.sinkhorn_iters, c.detach_plan))
        return 0.5 * (losses[0] + losses[1])

    def loss_terms(self, real: tuple[Tensor, Tensor], syn: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        c = self.cfg
        with torch.no_grad():
            _, _, ur_v, ur_t = self.lift(*real)
            c_real = cross_covariance(ur_v, ur_t)
            u_k, v_k, sig, k = range_basis(c_real, c.rank_energy, c.jitter)
            e_real = (sig[:k] ** 2).sum()
        xs_v, xs_t, us_v, us_t = self.lift(*syn)
        hitc = info_nce(-distance(xs_v, xs_t, c.curvature) / c.tau_hitc)
        (ar_v, rr_v), (ar_t, rr_t) = split_range_residual(ur_v, u_k), split_range_residual(ur_t, v_k)
        (as_v, rs_v), (as_t, rs_t) = split_range_residual(us_v, u_k), split_range_residual(us_t, v_k)
        m_range = self.match((ar_v, ar_t), (as_v, as_t))
        m_res = self.match((rr_v, rr_t), (rs_v, rs_t))
        reg_range, reg_res = energy_regularisers(cross_covariance(us_v, us_t), u_k, v_k, e_real, c.energy_eps)
        total = hitc + c.lambda_range * (m_range + reg_range) + c.lambda_residual * (m_res + c.lambda_comp * reg_res)
        return {"loss": total, "hitc": hitc, "match_range": m_range, "match_residual": m_res, "reg_range": reg_range,
                "reg_residual": reg_res, "rank_k": torch.tensor(float(k))}
