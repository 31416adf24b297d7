"""Factorised synthetic storage ("factor" l): IDC multi-formation / IDM partition-and-expansion.

As AVDD's ``number_sign_augment`` (Kushwaha et al., TMLR 2024) and IDM (Zhao et al., CVPR 2023): one stored
sample holds l or l*l downsampled real samples that are decoded back to full size for training.

* ``grid2d``: a stored (C, H, W) sample holds f×f blocks; block order is column-major, i.e. TL, BL, TR, BR
  for f = 2 (AVDD's order). Decoding cuts each block and upsamples it (bilinear) to (H, W).
* ``time1d``: the stored sample is split along the LAST axis (time) into pieces, each resized back to
  (F, T) (IDC speech). A time1d modality uses as many pieces as the pair multiplicity ``M`` (below), so
  audio and frames always decode to the same number of pairs.
* Multiplicity ``M`` = f² if any modality uses grid2d, else f; ``M = 1`` for f = 1.
* Row order after decoding is **block-major**: decoded row ``b·n + i`` is block ``b`` of stored row ``i``
  (n stored rows). Labels are repeated in block order (``labels.repeat(M)``). Every modality uses the
  same order, so decoded pair j keeps audio and frame from one source pair.
* :func:`encode` is the inverse used by initialisation: real rows ``b·n + i`` (downsampled) go into
  block ``b`` of stored row ``i``; ``decode(encode(x)) ≈ x`` up to the down/up-sampling error.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError
from .synth import SyntheticSet

Layout = Literal["grid2d", "time1d"]
LAYOUTS = ("grid2d", "time1d")


def multiplicity(layouts: dict[str, str] | list[str], f: int) -> int:
    """Decoded pairs per stored pair: f² if any layout is grid2d, else f (1 when f == 1)."""
    vals = list(layouts.values()) if isinstance(layouts, dict) else list(layouts)
    for v in vals:
        if v not in LAYOUTS:
            raise ConfigError(f"factor layout must be one of {LAYOUTS}, got {v!r}")
    if f < 1:
        raise ConfigError(f"factor must be >= 1, got {f}")
    if f == 1:
        return 1
    return f * f if "grid2d" in vals else f


def _edges(n: int, k: int) -> list[int]:
    if n < k:
        raise ConfigError(f"cannot split an axis of size {n} into {k} blocks")
    return [(i * n) // k for i in range(k + 1)]


def _blocks(h: int, w: int, layout: str, f: int, m: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) of every block in decode order."""
    if layout == "grid2d":
        ye, xe = _edges(h, f), _edges(w, f)
        return [(ye[r], ye[r + 1], xe[c], xe[c + 1]) for c in range(f) for r in range(f)]  # column-major: TL, BL, TR, BR
    if layout == "time1d":
        xe = _edges(w, m)
        return [(0, h, xe[p], xe[p + 1]) for p in range(m)]
    raise ConfigError(f"unknown factor layout {layout!r}; known: {LAYOUTS}")


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def decode(x: Tensor, layout: str, f: int, m: int | None = None) -> Tensor:
    """(n, C, H, W) stored -> (M·n, C, H, W) decoded, block-major (see module docstring)."""
    if f == 1:
        return x
    if x.dim() != 4:
        raise ConfigError(f"factorised decode needs (n, C, H, W) tensors, got shape {tuple(x.shape)}")
    m = m if m is not None else multiplicity([layout], f)
    h, w = x.shape[-2], x.shape[-1]
    blocks = _blocks(h, w, layout, f, m)
    if len(blocks) != m:
        raise ConfigError(f"layout {layout!r} with factor {f} gives {len(blocks)} blocks, but the pair multiplicity is {m}")
    return torch.cat([_resize(x[..., y0:y1, x0:x1], (h, w)) for (y0, y1, x0, x1) in blocks], 0)


def encode(x: Tensor, layout: str, f: int, m: int | None = None) -> Tensor:
    """(M·n, C, H, W) real rows -> (n, C, H, W) stored; row ``b·n + i`` fills block ``b`` of stored row ``i``."""
    if f == 1:
        return x.clone()
    m = m if m is not None else multiplicity([layout], f)
    if x.shape[0] % m:
        raise ConfigError(f"encode needs a multiple of {m} rows, got {x.shape[0]}")
    n = x.shape[0] // m
    h, w = x.shape[-2], x.shape[-1]
    out = torch.zeros((n, *x.shape[1:]), dtype=x.dtype, device=x.device)
    for b, (y0, y1, x0, x1) in enumerate(_blocks(h, w, layout, f, m)):
        out[..., y0:y1, x0:x1] = _resize(x[b * n:(b + 1) * n], (y1 - y0, x1 - x0))
    return out


def decode_set(syn: SyntheticSet) -> SyntheticSet:
    """Expand a factorised set (``meta["layout"]``) to the pairs models train on; labels repeated in block order."""
    layout = dict(syn.meta.get("layout") or {})
    f = int(layout.get("factor", 1))
    if f <= 1:
        return syn
    mods = {k: str(layout.get(k, "grid2d")) for k in syn.tensors}
    m = multiplicity(mods, f)
    tensors = {k: decode(t, mods[k], f, m) for k, t in syn.tensors.items()}
    labels = None if syn.labels is None else syn.labels.repeat(m, *([1] * (syn.labels.dim() - 1)))
    meta = dict(syn.meta)
    meta["layout"] = {"factor": 1, "decoded_from": layout, "multiplicity": m}  # decoding twice is a no-op
    return SyntheticSet(tensors=tensors, labels=labels, extras=dict(syn.extras), meta=meta)
