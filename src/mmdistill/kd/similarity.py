"""Control (1): FD-CMKD's motivating low/high cross-modal similarity, on real features and on random
vectors with a common mean.

The paper reports cos(low) 0.91, cos(raw) 0.84, cos(high) ~ 0 between the two modalities' features and
reads it as "low frequencies carry shared semantics". Independent vectors whose channels share
a mean m give the same numbers: cos(raw) ~ m^2/(m^2+s^2), cos(low incl. DC) ~ m^2/(m^2+s^2/2), cos(high) ~ 0.

:func:`band_similarity` computes, for paired rows of two feature matrices, the mean cosine of

* ``cos_raw``: the features themselves;
* ``cos_low_dc`` / ``cos_high``: the analysis-notebook masks (low band INCLUDING the DC bin);
* ``cos_low``: the training mask (DC excluded) - what FD-CMKD actually aligns;
* ``cos_low_perm`` / ``cos_high_perm``: training masks after one fixed random channel permutation.

:func:`common_mean_random` draws independent Gaussian vectors with each side's own channel mean and
spread (so nothing is shared but the mean structure) and measures the same quantities.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .fft_bands import split_bands

METRICS = ["cos_raw", "cos_low_dc", "cos_low", "cos_high", "cos_low_perm", "cos_high_perm"]


def mean_cos(a: Tensor, b: Tensor) -> float:
    return float(F.cosine_similarity(a.double(), b.double(), dim=1, eps=1e-12).mean())


def band_similarity(fa: Tensor, fb: Tensor, split_ratio: float = 0.5, seed: int = 0) -> dict[str, float]:
    """Mean paired cosine similarities of two (N, D) feature matrices (same D)."""
    if fa.shape != fb.shape:
        raise ValueError(f"band_similarity needs equal shapes, got {tuple(fa.shape)} and {tuple(fb.shape)}")
    fa, fb = fa.double(), fb.double()
    lo_dc_a, hi_a = split_bands(fa, split_ratio, keep_dc=True)
    lo_dc_b, hi_b = split_bands(fb, split_ratio, keep_dc=True)
    lo_a, _ = split_bands(fa, split_ratio)
    lo_b, _ = split_bands(fb, split_ratio)
    perm = torch.randperm(fa.shape[1], generator=torch.Generator().manual_seed(seed))
    plo_a, phi_a = split_bands(fa, split_ratio, perm=perm)
    plo_b, phi_b = split_bands(fb, split_ratio, perm=perm)
    return {"cos_raw": mean_cos(fa, fb), "cos_low_dc": mean_cos(lo_dc_a, lo_dc_b), "cos_low": mean_cos(lo_a, lo_b),
            "cos_high": mean_cos(hi_a, hi_b), "cos_low_perm": mean_cos(plo_a, plo_b),
            "cos_high_perm": mean_cos(phi_a, phi_b)}


def common_mean_random(fa: Tensor, fb: Tensor, seed: int = 0, split_ratio: float = 0.5) -> dict[str, Any]:
    """The same similarities for independent i.i.d. vectors with each side's mean and std."""
    g = torch.Generator().manual_seed(seed)
    stats = {}
    rand = []
    for name, f in (("a", fa.double()), ("b", fb.double())):
        m, s = float(f.mean()), float(f.std())
        stats[name] = {"mean": m, "std": s}
        rand.append(m + s * torch.randn(f.shape, generator=g, dtype=torch.float64))
    out = band_similarity(rand[0], rand[1], split_ratio, seed)
    ma, sa, mb, sb = stats["a"]["mean"], stats["a"]["std"], stats["b"]["mean"], stats["b"]["std"]
    # prediction for independent vectors (both sides' mean/spread): raw and notebook-low cosines
    out["pred_cos_raw"] = ma * mb / ((ma**2 + sa**2) * (mb**2 + sb**2)) ** 0.5
    out["pred_cos_low_dc"] = ma * mb / ((ma**2 + sa**2 / 2) * (mb**2 + sb**2 / 2)) ** 0.5
    out["stats"] = stats
    return out
