"""Initialisation of audio-visual synthetic sets: real pairs (random or herding) or noise.

As AVDD (Kushwaha et al., TMLR 2024): herding 'av' indices and IDM-style factor-2 tiling; herding per
VICO-UoE/DatasetCondensation#15. Herding uses the L2-normalised [audio; visual]
features of one real proxy training run (:func:`mmdistill.coreset.proxy.proxy_stats`): the 'av'
herding list, since AVDD's own extractor is not released [unverified].

With factor f > 1, each class takes M·N real pairs (M = decoded multiplicity, :mod:`mmdistill.factor`) and
:func:`~mmdistill.factor.encode` tiles them into N stored samples with the SAME block order for
both modalities, so decoded pair j of audio and of frames come from one real pair. If a class holds fewer
than M·N pairs, its selection is cycled (logged in ``info["cycled_classes"]``).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from ..coreset.proxy import ProxyConfig, proxy_stats
from ..coreset.select import herding_select
from ..data.paired import PairedDataset
from ..errors import ConfigError
from .. import factor as fac

InitMode = Literal["real", "herding", "noise"]


def class_rows(ds: PairedDataset) -> list[Tensor]:
    lab = ds.pair_labels()
    if lab is None:
        raise ConfigError(f"dataset {ds.name!r} has no labels; audio-visual distillation needs classes")
    nc = ds.num_classes or int(lab.max()) + 1
    return [torch.nonzero(lab == c, as_tuple=False).flatten() for c in range(nc)]


def select_real(ds: PairedDataset, per_class: int, mode: InitMode, seed: int, proxy: ProxyConfig | None = None,
                gen: torch.Generator | None = None) -> tuple[list[Tensor], dict[str, Any]]:
    """Global row indices per class (``per_class`` each, herding order or random), plus info."""
    rows = class_rows(ds)
    info: dict[str, Any] = {"cycled_classes": []}
    feats = None
    if mode == "herding":
        feats = proxy_stats(ds, proxy or ProxyConfig(), seed, progress=False)["features"]
    out = []
    for c, r in enumerate(rows):
        if r.numel() == 0:
            raise ConfigError(f"dataset {ds.name!r}: class {c} has no training pairs")
        k = min(per_class, r.numel())
        if mode == "herding":
            local = herding_select(feats[r], k)  # type: ignore[index]
        else:
            local = torch.randperm(r.numel(), generator=gen)[:k]
        if k < per_class:
            info["cycled_classes"].append(c)
            local = local.repeat((per_class + k - 1) // k)[:per_class]
        out.append(r[local])
    return out, info


def init_synthetic(ds: PairedDataset, ipc: int, f: int, layouts: dict[str, str], mode: InitMode, seed: int,
                   proxy: ProxyConfig | None = None, gen: torch.Generator | None = None
                   ) -> tuple[dict[str, list[Tensor]], Tensor, dict[str, Any]]:
    """Per-modality lists of per-class stored tensors (N, ...), labels (C·N,) class-major, info."""
    m = fac.multiplicity(layouts, f)
    rows = class_rows(ds)
    nc = len(rows)
    labels = torch.arange(nc).repeat_interleave(ipc)
    shapes = ds.pair_shape()
    out: dict[str, list[Tensor]] = {k: [] for k in ds.tensors}
    info: dict[str, Any] = {"init": mode, "factor": f, "multiplicity": m}
    if mode == "noise":
        for k in out:
            out[k] = [torch.randn((ipc, *shapes[k]), generator=gen) for _ in range(nc)]
        return out, labels, info
    if mode not in ("real", "herding"):
        raise ConfigError(f"init must be one of real, herding, noise; got {mode!r}")
    sel, sinfo = select_real(ds, m * ipc, mode, seed, proxy, gen)
    info.update(sinfo)
    info["source_indices"] = [s.tolist() for s in sel]
    for k, t in ds.tensors.items():
        for c in range(nc):
            out[k].append(fac.encode(t[sel[c]].float(), layouts.get(k, "grid2d"), f, m).contiguous())
    return out, labels, info
