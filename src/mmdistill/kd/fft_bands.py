"""Channel-axis frequency bands of a pooled feature vector.

The single home of FD-CMKD's FFT math; the loss, the similarity analysis and the tests all import it.

* ``rfft`` along the LAST axis of a (B, D) feature: K = D//2 + 1 complex bins.
* Cut index ``c = round(split_ratio * (K - 1))``: low band = bins 1..c, high band = bins c+1..K-1 (the
  Nyquist bin, when D is even, is in the high band). Bin 0 (DC = the per-sample mean) is in neither band
  unless ``keep_dc=True`` puts it in the low band (the variant in the authors' analysis notebook).
* The inverse always passes ``n=D`` (for odd D the default inverse length would be D - 1).
* Half precision is computed in float32 (half FFTs support only power-of-two lengths) and cast back;
  float64 stays float64.

With ``keep_dc=False``: ``low + high = f - mean(f)`` and both bands have zero mean.
"""

from __future__ import annotations

import torch
from torch import Tensor


def num_bins(dim: int) -> int:
    return dim // 2 + 1


def cut_index(dim: int, split_ratio: float) -> int:
    """Last low-band bin: ``round(split_ratio * (K - 1))`` (128 for D = 512 and ratio 1/2)."""
    if not 0.0 <= split_ratio <= 1.0:
        raise ValueError(f"split_ratio must be in [0, 1], got {split_ratio}")
    return int(round(split_ratio * (num_bins(dim) - 1)))


def band_masks(dim: int, split_ratio: float = 0.5, keep_dc: bool = False) -> tuple[Tensor, Tensor]:
    """Binary (K,) float masks over the rfft bins: (low, high)."""
    k = num_bins(dim)
    c = cut_index(dim, split_ratio)
    idx = torch.arange(k)
    low = ((idx >= 1) & (idx <= c)).float()
    high = (idx > c).float()
    if keep_dc:
        low[0] = 1.0
    return low, high


def soft_band_masks(dim: int, cut: Tensor, temperature: float = 1.0, keep_dc: bool = False) -> tuple[Tensor, Tensor]:
    """Differentiable masks for the learnable split (our extension, not in the paper or its code).

    ``cut`` is a scalar position in bin units (1..K-1). ``low[k] = sigmoid((cut + 0.5 - k) / temperature)`` on
    the non-DC bins and ``high = 1 - low`` there; DC is 0 in both (or 1 in ``low`` with ``keep_dc``). When
    ``temperature -> 0`` this is the binary mask with ``c = floor(cut)``.
    """
    k = num_bins(dim)
    idx = torch.arange(k, dtype=torch.float32, device=cut.device)
    low = torch.sigmoid((cut.float() + 0.5 - idx) / temperature)
    ac = (idx >= 1).float()
    low_m = low * ac
    high_m = (1.0 - low) * ac
    if keep_dc:
        low_m = low_m + (1.0 - ac)
    return low_m, high_m


def apply_masks(f: Tensor, low_mask: Tensor, high_mask: Tensor) -> tuple[Tensor, Tensor]:
    """(B, D) -> (f_low, f_high), each (B, D): ``irfft(rfft(f) * mask, n=D)`` in float32."""
    if f.dim() != 2:
        raise ValueError(f"expected a (B, D) feature, got shape {tuple(f.shape)}")
    dtype = f.dtype
    d = f.shape[-1]
    x = f if dtype == torch.float64 else f.float()
    spec = torch.fft.rfft(x, dim=-1)
    lm = low_mask.to(device=x.device, dtype=x.dtype)
    hm = high_mask.to(device=x.device, dtype=x.dtype)
    low = torch.fft.irfft(spec * lm, n=d, dim=-1)
    high = torch.fft.irfft(spec * hm, n=d, dim=-1)
    if dtype in (torch.float16, torch.bfloat16):
        low, high = low.to(dtype), high.to(dtype)
    return low, high


def split_bands(f: Tensor, split_ratio: float = 0.5, keep_dc: bool = False,
                perm: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Low and high band of ``f`` (B, D). ``perm`` (D,) permutes the channels first (the permutation control)."""
    if perm is not None:
        f = f[:, perm]
    low, high = band_masks(f.shape[-1], split_ratio, keep_dc)
    return apply_masks(f, low, high)


def signed_log1p(x: Tensor) -> Tensor:
    """psi(x) = sign(x) * log(1 + |x|): odd, monotone, psi(0) = 0 (the 'logMSE' map)."""
    return torch.sign(x) * torch.log1p(x.abs())


def l2_normalize(z: Tensor, eps: float = 1e-8) -> Tensor:
    """Row-wise ``z / max(||z||_2, eps)`` (FD-CMKD's scale normalisation; bands are already zero-mean)."""
    return z / z.norm(dim=-1, keepdim=True).clamp_min(eps)
