"""Identities behind CovMatch and RAHA: covariance algebra, Lorentz maps, Sinkhorn (float64, tiny sizes)."""

from __future__ import annotations

import math

import pytest
import torch

from mmdistill.distill.covariance import (
    covariance_matching_loss, cross_covariance, energy_rank, linear_contrastive_loss, linear_contrastive_solution,
    mean_feature_loss, range_basis, split_range_residual,
)
from mmdistill.distill.lorentz import distance, expmap0, logmap0, lorentz_inner, origin
from mmdistill.losses.contrastive import contrastive_logits, info_nce
from mmdistill.distill.sinkhorn import sinkhorn_log, transport_cost
from mmdistill.errors import ConfigError

D = torch.float64


def _pairs(n=12, dv=5, dl=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    hv = torch.randn(n, dv, generator=g, dtype=D)
    hl = hv[:, :dl] @ torch.randn(dl, dl, generator=g, dtype=D) + 0.3 * torch.randn(n, dl, generator=g, dtype=D)
    return hv, hl


# ----------------------------------------------------------------------------------------------- covariance
def test_cross_covariance_matches_numpy_cov():
    hv, hl = _pairs()
    full = torch.cov(torch.cat([hv, hl], 1).T)
    assert torch.allclose(cross_covariance(hv, hl), full[:5, 5:])


def test_high_temperature_infonce_is_linear_contrastive():
    """τ·(InfoNCE − log n) → −((n−1)/n)·Tr(G_v C G_lᵀ) for unnormalised logits ⟨G_v h_v, G_l h_l⟩/τ."""
    hv, hl = _pairs(n=10)
    g = torch.Generator().manual_seed(1)
    gv, gl = torch.randn(3, 5, generator=g, dtype=D), torch.randn(3, 4, generator=g, dtype=D)
    n = hv.shape[0]
    target = -((n - 1) / n) * torch.trace(gv @ cross_covariance(hv, hl) @ gl.T)
    errs = []
    for tau in (1e2, 1e5):
        logits = (hv @ gv.T) @ (hl @ gl.T).T / tau
        errs.append(abs(float(tau * (info_nce(logits) - math.log(n)) - target)) / abs(float(target)))
    assert errs[1] < 2e-3 and errs[1] < errs[0] / 10
    # the trace part equals the linear contrastive loss at ρ = 0
    assert torch.isclose(linear_contrastive_loss(gv, gl, cross_covariance(hv, hl), 0.0),
                         -torch.trace(gv @ cross_covariance(hv, hl) @ gl.T))


def test_closed_form_is_stationary_and_minimal():
    hv, hl = _pairs()
    c, rho = cross_covariance(hv, hl), 2.0
    m = linear_contrastive_solution(c, rho).requires_grad_(True)
    loss = -(m * c).sum() + 0.5 * rho * (m * m).sum()  # L_lin as a function of M = G_vᵀG_l
    (grad,) = torch.autograd.grad(loss, m)
    assert grad.abs().max() < 1e-12
    # gradient descent on the factors (r ≥ rank) reaches the same M
    g = torch.Generator().manual_seed(2)
    gv = (0.1 * torch.randn(6, 5, generator=g, dtype=D)).requires_grad_(True)
    gl = (0.1 * torch.randn(6, 4, generator=g, dtype=D)).requires_grad_(True)
    opt = torch.optim.SGD([gv, gl], lr=0.05)
    for _ in range(4000):
        opt.zero_grad()
        linear_contrastive_loss(gv, gl, c, rho).backward()
        opt.step()
    assert torch.allclose(gv.T @ gl, c / rho, atol=1e-5)


def test_truncated_solution_is_best_rank_r():
    hv, hl = _pairs()
    c, rho = cross_covariance(hv, hl), 1.5
    m2 = linear_contrastive_solution(c, rho, rank=2)
    assert torch.linalg.matrix_rank(m2) == 2
    lin = lambda m: float(-(m * c).sum() + 0.5 * rho * (m * m).sum())
    g = torch.Generator().manual_seed(3)
    for _ in range(20):  # random rank-2 perturbations never do better
        p = m2 + 0.05 * torch.randn(5, 2, generator=g, dtype=D) @ torch.randn(2, 4, generator=g, dtype=D)
        if torch.linalg.matrix_rank(p) <= 2:
            assert lin(p) >= lin(m2) - 1e-12


def test_outer_identity_and_invariances():
    hv, hl = _pairs(seed=4)
    sv, sl = _pairs(n=7, seed=5)
    ct, cs, rho = cross_covariance(hv, hl), cross_covariance(sv, sl), 2.0
    m = cs / rho
    outer = -(ct * m).sum() + 0.5 * (m * m).sum()
    assert torch.isclose(outer, (covariance_matching_loss(ct, cs, rho) - rho ** 2 * (ct * ct).sum()) / (2 * rho ** 2))
    shifted = cross_covariance(sv + 3.0, sl - 1.0)
    assert torch.isclose(covariance_matching_loss(ct, shifted, rho), covariance_matching_loss(ct, cs, rho))
    assert covariance_matching_loss(ct, ct, 1.0) == 0
    assert mean_feature_loss(hv, hv[torch.randperm(12)]) < 1e-20
    assert mean_feature_loss(hv, hv + 1.0) == pytest.approx(5.0)


def test_energy_rank_rule_and_split():
    s = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=D).sqrt()
    assert energy_rank(s, 0.95) == 3 and energy_rank(s, 1.0) == 4 and energy_rank(s, 0.4) == 1
    with pytest.raises(ConfigError):
        energy_rank(s, 0.0)
    hv, hl = _pairs(n=30, dv=6, dl=6)
    u, v, sig, k = range_basis(cross_covariance(hv, hl), 0.9)
    assert u.shape == (6, k) and v.shape == (6, k) and 1 <= k <= 6
    a, r = split_range_residual(hv, u)
    assert torch.allclose(a @ u.T + r, hv)
    assert (r @ u).abs().max() < 1e-10  # residual ⟂ range


# ----------------------------------------------------------------------------------------------- Lorentz
@pytest.mark.parametrize("c", [0.5, 1.0, 2.0])
def test_lorentz_exp_log_invert_and_stay_on_hyperboloid(c):
    g = torch.Generator().manual_seed(0)
    v = torch.randn(20, 6, generator=g, dtype=D) * torch.linspace(0.01, 1.0, 20, dtype=D)[:, None]
    x = expmap0(v, c)
    assert torch.allclose(torch.diagonal(lorentz_inner(x, x)), torch.full((20,), -1.0 / c, dtype=D), rtol=1e-7)
    assert torch.allclose(logmap0(x, c), v, atol=1e-9)
    assert torch.allclose(distance(origin(6, c, D), x, c)[0], v.norm(dim=1), atol=1e-6)


def test_lorentz_distance_metric_properties_and_flat_limit():
    g = torch.Generator().manual_seed(1)
    a, b, e = (torch.randn(8, 4, generator=g, dtype=D) for _ in range(3))
    xa, xb, xe = expmap0(a), expmap0(b), expmap0(e)
    dab = distance(xa, xb)
    assert torch.allclose(dab, distance(xb, xa).T)
    assert (torch.diagonal(dab) + torch.diagonal(distance(xb, xe)) >= torch.diagonal(distance(xa, xe)) - 1e-9).all()
    assert torch.diagonal(distance(xa, xa)).max() < 1e-3  # clamped arcosh: ≈ √(2·eps)
    c = 1e-3
    flat = distance(expmap0(0.1 * a, c), expmap0(0.1 * b, c), c)
    assert torch.allclose(flat, torch.cdist(0.1 * a, 0.1 * b), rtol=1e-3, atol=1e-4)


def test_hitc_of_coincident_points_is_log_n():
    x = expmap0(torch.ones(5, 3, dtype=D))
    logits = -distance(x, x) / 0.07
    assert info_nce(logits).item() == pytest.approx(math.log(5))


# ----------------------------------------------------------------------------------------------- Sinkhorn
def test_sinkhorn_marginals_and_permutation_invariance():
    g = torch.Generator().manual_seed(0)
    sq = torch.rand(64, 64, generator=g, dtype=D)  # RAHA's setting: 64 x 64, unit-mean cost, eps 0.05, 20 iterations
    t = sinkhorn_log(sq / sq.mean(), eps=0.05, iters=20)
    assert torch.allclose(t.sum(1), torch.full((64,), 1 / 64, dtype=D), atol=1e-4)
    cost = torch.rand(6, 9, generator=g, dtype=D)
    cost = cost / cost.mean()
    t = sinkhorn_log(cost, eps=0.05, iters=100)  # rectangular costs converge more slowly
    assert torch.allclose(t.sum(0), torch.full((9,), 1 / 9, dtype=D), atol=1e-12)
    assert torch.allclose(t.sum(1), torch.full((6,), 1 / 6, dtype=D), atol=1e-8)
    perm = torch.randperm(6, generator=g)
    assert torch.isclose(transport_cost(cost[perm]), transport_cost(cost), rtol=1e-10)
    # small ε approaches the exact assignment (here a permutation cost with zero diagonal)
    sq = torch.rand(5, 5, generator=g, dtype=D) + 1.0
    sq.fill_diagonal_(0.0)
    assert transport_cost(sq, eps=0.01, iters=200) < 1e-6
    with pytest.raises(ConfigError):
        sinkhorn_log(cost, eps=0.0)


def test_sinkhorn_gradcheck():
    g = torch.Generator().manual_seed(2)
    cost = (torch.rand(4, 3, generator=g, dtype=D) + 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda c: transport_cost(c, eps=0.3, iters=10), (cost,))
