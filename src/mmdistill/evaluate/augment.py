"""Train-time augmentation for evaluation models (not Siamese; distillation's DSA lives in distill/).

Images: random translation by up to ``max_shift`` of each side (zero padding). Spectrograms: time
shift only (no frequency flips or shifts: frequency position carries meaning
item 10). One random draw per sample from the given generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_translate(x: Tensor, gen: torch.Generator, max_shift: float = 0.125, axes: str = "hw") -> Tensor:
    """Translate each sample of (B,C,H,W) by a random fraction in [-max_shift, max_shift] per axis."""
    b = x.shape[0]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    if "w" in axes:
        theta[:, 0, 2] = (torch.rand(b, generator=gen) * 2 - 1) * max_shift * 2
    if "h" in axes:
        theta[:, 1, 2] = (torch.rand(b, generator=gen) * 2 - 1) * max_shift * 2
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)  # draws on the CPU generator
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment_modality(modality: str, x: Tensor, gen: torch.Generator) -> Tensor:
    if x.dim() != 4:
        return x
    if modality == "audio":
        return random_translate(x, gen, max_shift=0.125, axes="w")  # time axis is the last one
    return random_translate(x, gen, max_shift=0.125, axes="hw")
