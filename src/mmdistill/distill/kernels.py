"""Kernels and kernel two-sample statistics, written once (CONTRIBUTING.md "shared math").

Geodesic Gaussian kernel on the unit sphere (MDM):

    d(a, b) = arccos(⟨a/‖a‖, b/‖b‖⟩)              (great-circle distance, in [0, π])
    k(a, b) = exp(−d(a, b)² / (2σ²))              (σ = 0.5 in MDM)

Kernel two-sample statistic between sets X (n rows) and Y (m rows):

    MMD²(X, Y) = w · mean_{i≠j} k(xᵢ, xⱼ) + mean_{i≠j} k(yᵢ, yⱼ) − 2 · mean_{i,j} k(xᵢ, yⱼ)

``unbiased=True`` uses the off-diagonal means of the two intra-set blocks (the unbiased U-statistic, as the
public MDM code does); ``unbiased=False`` uses the plain means (biased V-statistic, includes k(x, x) = 1).
``w`` is the MDM code's "diversity weight" on the first set's intra term (1 = plain MMD).
GKE ("geodesic kernel energy", MDM Eq. for the agreement/discrepancy terms) is √max(MMD², 0) with the
geodesic kernel; the square root is optional (``--sqrtmmd`` in the code, on in its script).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError

Kernel = Callable[[Tensor, Tensor], Tensor]


def geodesic_distance(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """(n, m) great-circle distances between the rows of ``a`` and ``b`` (rows are L2-normalised first).

    The cosine is clamped to [−1 + eps, 1 − eps] so arccos stays differentiable; d(x, x) is then
    arccos(1 − eps) ≈ √(2·eps) instead of 0.
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ConfigError(f"geodesic_distance needs two (n, d) matrices of the same d, got {tuple(a.shape)} and {tuple(b.shape)}")
    cos = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
    return torch.acos(cos.clamp(-1.0 + eps, 1.0 - eps))


def geodesic_gaussian_kernel(a: Tensor, b: Tensor, sigma: float = 0.5, eps: float = 1e-6) -> Tensor:
    """(n, m) matrix k(aᵢ, bⱼ) = exp(−arccos(cos)² / (2σ²))."""
    if sigma <= 0:
        raise ConfigError(f"kernel bandwidth sigma must be > 0, got {sigma}")
    d = geodesic_distance(a, b, eps)
    return torch.exp(-(d * d) / (2.0 * sigma * sigma))


def offdiag_mean(k: Tensor) -> Tensor:
    """Mean of the off-diagonal entries of a square matrix (the plain mean when it is 1×1 or not square)."""
    n = k.shape[0]
    if k.dim() != 2 or k.shape[1] != n or n < 2:
        return k.mean()
    return (k.sum() - torch.diagonal(k).sum()) / (n * (n - 1))


def mmd2(x: Tensor, y: Tensor, kernel: Kernel, *, unbiased: bool = True, weight_xx: float = 1.0) -> Tensor:
    """Squared MMD between the rows of ``x`` and ``y`` under ``kernel`` (see the module docstring)."""
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
    intra = offdiag_mean if unbiased else torch.mean
    return weight_xx * intra(kxx) + intra(kyy) - 2.0 * kxy.mean()


def gke(x: Tensor, y: Tensor, sigma: float = 0.5, *, sqrt: bool = True, unbiased: bool = True,
        weight_xx: float = 1.0, eps: float = 1e-12) -> Tensor:
    """Geodesic kernel energy: √(max(MMD², 0) + eps) with the geodesic Gaussian kernel (MMD² if not ``sqrt``).

    ``eps`` keeps the square root differentiable at 0 (the MDM code adds 1e-12); an unbiased MMD² can be
    slightly negative, and it is then clamped to 0 (no gradient), as in the code.
    """
    m = mmd2(x, y, lambda a, b: geodesic_gaussian_kernel(a, b, sigma), unbiased=unbiased, weight_xx=weight_xx)
    if not sqrt:
        return m
    return torch.sqrt(m.clamp(min=0.0) + eps)
