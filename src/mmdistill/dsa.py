"""Differentiable Siamese Augmentation (DSA) for audio-visual distillation.

Zhao & Bilen, "Dataset Condensation with Differentiable Siamese Augmentation" (arXiv 2102.08259): ops and
ranges of DSA's ``ParamDiffAug``; AVDD (Kushwaha et al., TMLR 2024) shares one draw across both modalities. The visual
ops are domain-inappropriate on spectrograms (a flip reverses time), hence the spectrogram ops below.

* **Siamese**: one parameter draw (:func:`draw`) is applied to the real batch AND the synthetic batch of
  a modality, so both see the identical transform. One sampled value is broadcast to the whole batch.
* **One op per call** (DSA/AVDD aug_mode ``'S'``): each draw samples one op from the modality's list.
* **Across modalities**: ``share_across_modalities=True`` seeds both modalities' draws with the same
  seed (AVDD-faithful): with ``audio_ops="avdd"`` audio and visual get the same op and the same
  fractional parameters (crop/cutout offsets are fractions of each tensor's size, so correlated, not
  identical in pixels); with the spectrogram ops the draws are correlated but the op lists differ.
  ``False`` draws each modality from an independent seed.
* **Audio ops**: ``"spectrogram"`` (default): ``time_shift`` (translate along time, the last axis, zero
  filled with ``mask_value``) and ``time_mask`` (SpecAugment-style band of time frames set to
  ``mask_value``); no frequency flips, shifts, scales or rotations. ``"avdd"``: the visual
  DSA ops, AVDD-faithful (flip reverses time, crop/scale/rotate warp frequency). ``"none"``: identity.

Given the same draws, the ops equal AVDD's copy of DSA's ops (tests/test_parity_av_kd.py) up to sign
conventions that map each symmetric distribution onto itself (rotation angle, crop shift), with
``affine_align_corners=False`` (the reference's grid; ours defaults to True, which rotates a non-square map
differently and leaves every other op unchanged).

Every op is differentiable w.r.t. the input tensor (affine ``grid_sample``, masks, shifts), so gradients
flow to the synthetic data. All randomness comes from a ``torch.Generator`` seeded by the caller.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError

VISUAL_OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
SPEC_AUDIO_OPS = ("time_shift", "time_mask")


@dataclass
class DSAConfig:
    """DSA settings; ranges are DSA's ``ParamDiffAug`` defaults."""

    enabled: bool = True
    strategy: str = "color_crop_cutout_flip_scale_rotate"  # visual ops, '_'-separated (DSA naming)
    audio_ops: Literal["spectrogram", "avdd", "none"] = "spectrogram"
    share_across_modalities: bool = True  # AVDD: same seed for both modalities
    scale: float = 1.2  # factors in [1/scale, scale], independent per axis
    rotate_deg: float = 15.0
    crop: float = 0.125  # translate by up to this fraction of each side
    cutout: float = 0.5  # side of the zeroed patch as a fraction
    brightness: float = 1.0  # additive (U - 0.5) * brightness, i.e. +-0.5
    saturation: float = 2.0  # x U[0, saturation]
    contrast: float = 0.5  # x U[1 - contrast, 1 + contrast]
    time_shift: float = 0.125  # spectrogram: shift up to this fraction of the time axis
    time_mask: float = 0.25  # spectrogram: mask up to this fraction of time frames
    mask_value: float = 0.0  # fill for shifts/masks (0 = the mean of standardised features)
    # scale/rotate sampling grid: True (ours) or False (DSA/AVDD's code: PyTorch's default for affine_grid/grid_sample)
    affine_align_corners: bool = True

    def ops_for(self, modality: str) -> tuple[str, ...]:
        vis = tuple(o for o in self.strategy.split("_") if o)
        bad = [o for o in vis if o not in VISUAL_OPS]
        if bad:
            raise ConfigError(f"dsa.strategy: unknown op(s) {bad}; known: {', '.join(VISUAL_OPS)}")
        if modality == "audio":
            if self.audio_ops == "spectrogram":
                return SPEC_AUDIO_OPS
            if self.audio_ops == "avdd":
                return vis
            return ()
        return vis


@dataclass
class AugParams:
    """One drawn op and its parameters (fractions, so they apply to any tensor size)."""

    op: str
    values: dict[str, float] = field(default_factory=dict)


def _u(gen: torch.Generator) -> float:
    return float(torch.rand((), generator=gen))


def draw(ops: tuple[str, ...], gen: torch.Generator, cfg: DSAConfig) -> AugParams:
    """Sample one op of ``ops`` and its parameters from ``gen`` (identity if ``ops`` is empty)."""
    if not ops or not cfg.enabled:
        return AugParams("identity")
    op = ops[int(torch.randint(len(ops), (), generator=gen))]
    return draw_params(op, gen, cfg)


def draw_params(op: str, gen: torch.Generator, cfg: DSAConfig) -> AugParams:
    """Sample the parameters of the given op from ``gen``."""
    v: dict[str, float] = {}
    if op == "flip":
        v["flip"] = float(_u(gen) < 0.5)
    elif op == "scale":
        lo = 1.0 / cfg.scale
        v["sx"] = lo + (cfg.scale - lo) * _u(gen)
        v["sy"] = lo + (cfg.scale - lo) * _u(gen)
    elif op == "rotate":
        v["theta"] = (_u(gen) - 0.5) * 2 * cfg.rotate_deg * math.pi / 180.0
    elif op == "crop":
        v["dx"] = (_u(gen) * 2 - 1) * cfg.crop
        v["dy"] = (_u(gen) * 2 - 1) * cfg.crop
    elif op == "cutout":
        v["cx"] = _u(gen)
        v["cy"] = _u(gen)
    elif op == "color":
        v["b"] = (_u(gen) - 0.5) * cfg.brightness
        v["s"] = _u(gen) * cfg.saturation
        v["c"] = 1.0 - cfg.contrast + 2 * cfg.contrast * _u(gen)
    elif op == "time_shift":
        v["dx"] = (_u(gen) * 2 - 1) * cfg.time_shift
    elif op == "time_mask":
        v["width"] = _u(gen) * cfg.time_mask
        v["start"] = _u(gen)
    return AugParams(op, v)


def _affine(x: Tensor, a: list[list[float]], align_corners: bool = True) -> Tensor:
    theta = torch.tensor(a, dtype=x.dtype, device=x.device).unsqueeze(0).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=align_corners)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


def _shift(x: Tensor, dy: int, dx: int, fill: float) -> Tensor:
    """Translate by whole pixels along the last two axes, filling with ``fill`` (differentiable)."""
    h, w = x.shape[-2], x.shape[-1]
    out = torch.full_like(x, fill)
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    if abs(dy) >= h or abs(dx) >= w:
        return out
    out[..., yd, xd] = x[..., ys, xs]
    return out


def _band_mask(x: Tensor, axis: int, start: int, stop: int, fill: float) -> Tensor:
    mask = torch.ones(x.shape[axis], dtype=x.dtype, device=x.device)
    mask[start:stop] = 0.0
    shape = [1] * x.dim()
    shape[axis] = -1
    mask = mask.view(shape)
    return x * mask + fill * (1 - mask)


def apply(x: Tensor, p: AugParams, cfg: DSAConfig) -> Tensor:
    """Apply drawn op ``p`` to a (B, C, H, W) batch (identical transform for every row)."""
    if p.op == "identity" or x.dim() != 4:
        return x
    v = p.values
    h, w = x.shape[-2], x.shape[-1]
    if p.op == "flip":
        return x.flip(-1) if v["flip"] else x
    if p.op == "scale":
        return _affine(x, [[v["sx"], 0.0, 0.0], [0.0, v["sy"], 0.0]], cfg.affine_align_corners)
    if p.op == "rotate":
        t = v["theta"]
        return _affine(x, [[math.cos(t), math.sin(t), 0.0], [-math.sin(t), math.cos(t), 0.0]], cfg.affine_align_corners)
    if p.op == "crop":
        return _shift(x, int(round(v["dy"] * h)), int(round(v["dx"] * w)), 0.0)
    if p.op == "cutout":
        sh, sw = int(h * cfg.cutout + 0.5), int(w * cfg.cutout + 0.5)
        cy, cx = int(v["cy"] * h), int(v["cx"] * w)
        y0, y1 = max(cy - sh // 2, 0), min(cy - sh // 2 + sh, h)
        x0, x1 = max(cx - sw // 2, 0), min(cx - sw // 2 + sw, w)
        mask = torch.ones(h, w, dtype=x.dtype, device=x.device)
        mask[y0:y1, x0:x1] = 0.0
        return x * mask
    if p.op == "color":
        x = x + v["b"]
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * v["s"] + m
        m = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - m) * v["c"] + m
    if p.op == "time_shift":
        return _shift(x, 0, int(round(v["dx"] * w)), cfg.mask_value)
    if p.op == "time_mask":
        width = int(round(v["width"] * w))
        start = int(v["start"] * max(w - width, 0))
        return _band_mask(x, -1, start, start + width, cfg.mask_value) if width > 0 else x
    raise ConfigError(f"dsa: unknown op {p.op!r}")


def augment_per_sample(x: Tensor, ops: tuple[str, ...], gen: torch.Generator, cfg: DSAConfig) -> Tensor:
    """DSA as a training augmentation (not Siamese): one op per batch, its parameters drawn per sample.

    This is DSA's ``DiffAugment`` with ``seed=-1`` in single-op mode, as AVDD's evaluation applies it to every
    training batch of each modality.
    """
    if not ops or not cfg.enabled or x.dim() != 4:
        return x
    op = ops[int(torch.randint(len(ops), (), generator=gen))]
    return torch.cat([apply(x[i:i + 1], draw_params(op, gen, cfg), cfg) for i in range(x.shape[0])])


class SiameseDSA:
    """Draws per-modality parameters from one seed and applies them to real and synthetic batches.

    ``draw(seed)`` -> ``{modality: AugParams}``; ``__call__(x, modality, params)`` applies them. Real and
    synthetic batches of a modality must be passed the same ``params`` (that is the Siamese property).
    """

    def __init__(self, cfg: DSAConfig, modalities: tuple[str, ...] = ("audio", "visual")) -> None:
        self.cfg = cfg
        self.modalities = modalities
        self.ops = {m: cfg.ops_for(m) for m in modalities}

    def draw(self, seed: int) -> dict[str, AugParams]:
        out: dict[str, AugParams] = {}
        for i, m in enumerate(self.modalities):
            g = torch.Generator()
            g.manual_seed(int(seed) if self.cfg.share_across_modalities else int(seed) * 1_000_003 + 7919 * (i + 1))
            out[m] = draw(self.ops[m], g, self.cfg)
        return out

    def __call__(self, x: Tensor, modality: str, params: dict[str, AugParams]) -> Tensor:
        return apply(x, params[modality], self.cfg)
