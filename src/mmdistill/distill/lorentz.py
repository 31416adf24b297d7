"""Lorentz (hyperboloid) model of hyperbolic space with curvature −c (c > 0), maps at the origin.

Points x = (x₀, x̄) ∈ ℝ^{1+d} with ⟨x, x⟩_L = −1/c, x₀ > 0, where ⟨u, v⟩_L = −u₀v₀ + ūᵀv̄; origin o = (1/√c, 0).
Tangent vectors at o are identified with v ∈ ℝᵈ (their zero time component dropped). With r = √c·‖v‖:

    exp_o(v) = (cosh(r)/√c,  sinh(r)/r · v)          (x̄ as in MERU, Desai et al., arXiv:2304.09172)
    log_o(x) = arcosh(√c·x₀)/(√c·‖x̄‖) · x̄
    d_c(x, y) = arcosh(−c⟨x, y⟩_L)/√c

so log_o(exp_o(v)) = v and d_c(o, exp_o(v)) = ‖v‖; as c → 0 the geodesic distance tends to the Euclidean one.
RAHA (Jeong et al., arXiv:2606.29464) lifts projected features with exp_o(s·z) (s = lift scale) and trains with
logits −d_c/τ. Numerics: the arcosh argument is clamped to ≥ 1 + ``eps`` (infinite slope at 1), r is clamped
below ``max_r`` (sinh overflows in float32 near 89).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError


def _check_c(c: float) -> float:
    if c <= 0:
        raise ConfigError(f"curvature c must be > 0, got {c}")
    return float(c)


def lorentz_inner(x: Tensor, y: Tensor) -> Tensor:
    """(n, m) Minkowski products ⟨xᵢ, yⱼ⟩_L = −x₀y₀ + x̄ᵀȳ of points given as (n, 1+d) and (m, 1+d)."""
    return -x[:, :1] @ y[:, :1].T + x[:, 1:] @ y[:, 1:].T


def expmap0(v: Tensor, c: float = 1.0, max_r: float = 50.0, eps: float = 1e-12) -> Tensor:
    """Points (n, 1+d) on the hyperboloid: exp_o of tangent vectors v (n, d) (r = √c‖v‖ clamped at ``max_r``)."""
    c = _check_c(c)
    sc = math.sqrt(c)
    norm = v.norm(dim=-1, keepdim=True).clamp_min(eps)
    r = (sc * norm).clamp(max=max_r)
    space = (torch.sinh(r) / (sc * norm)) * v
    time = torch.cosh(r) / sc
    return torch.cat([time, space], dim=-1)


def logmap0(x: Tensor, c: float = 1.0, eps: float = 1e-7) -> Tensor:
    """Tangent vectors (n, d) at the origin of points x (n, 1+d): the inverse of :func:`expmap0`."""
    c = _check_c(c)
    sc = math.sqrt(c)
    space = x[..., 1:]
    norm = space.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    dist = torch.acosh((sc * x[..., :1]).clamp_min(1.0 + eps))
    return dist / (sc * norm) * space


def distance(x: Tensor, y: Tensor, c: float = 1.0, eps: float = 1e-7) -> Tensor:
    """(n, m) geodesic distances d_c(xᵢ, yⱼ) = arcosh(−c⟨xᵢ, yⱼ⟩_L)/√c."""
    c = _check_c(c)
    return torch.acosh((-c * lorentz_inner(x, y)).clamp_min(1.0 + eps)) / math.sqrt(c)


def origin(d: int, c: float = 1.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """The origin o = (1/√c, 0, …, 0) as a (1, 1+d) row."""
    o = torch.zeros(1, d + 1, dtype=dtype)
    o[0, 0] = 1.0 / math.sqrt(_check_c(c))
    return o
