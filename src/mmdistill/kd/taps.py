"""Networks for KD and their declared feature taps (hook points; the nets are never edited).

* ``convnet``: feat = ``features.<depth-1>.norm`` (the last block's pre-ReLU map), mid =
  ``features.<depth-2>.act``. Use ``norm="batch"``: with instance norm the global average of a
  normalised map is the constant affine bias, so a pooled pre-ReLU tap would carry no information.
* ``resnet18``: feat = ``layer4`` (pre-ReLU, the FD-CMKD tap), mid = ``layer3``.
* ``mlp``: feat = ``features.1`` (the hidden Linear, pre-ReLU), mid = ``features.2`` (post-ReLU).

A tapped map (B, C, H, W) becomes the (B, C) feature by global average pooling.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..errors import ConfigError
from ..nets import create_net
from .config import NetSpec

AUTO_IMAGE: dict[str, Any] = {"arch": "convnet", "kwargs": {"width": 32, "depth": 3, "norm": "batch"}}
AUTO_VECTOR: dict[str, Any] = {"arch": "mlp", "kwargs": {"hidden": 32}}


def resolve_spec(spec: NetSpec, in_shape: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    if spec.arch != "auto":
        return spec.arch, dict(spec.kwargs)
    base = AUTO_VECTOR if len(in_shape) == 1 else AUTO_IMAGE
    return base["arch"], {**base["kwargs"], **spec.kwargs}


def default_taps(arch: str, kwargs: dict[str, Any]) -> dict[str, str]:
    if arch == "convnet":
        depth = int(kwargs.get("depth", 3))
        return {"feat": f"features.{depth - 1}.norm", "mid": f"features.{max(depth - 2, 0)}.act"}
    if arch == "resnet18":
        return {"feat": "layer4", "mid": "layer3"}
    if arch == "mlp":
        return {"feat": "features.1", "mid": "features.2"}
    return {}


def build_net(spec: NetSpec, in_shape: tuple[int, ...], num_classes: int) -> tuple[nn.Module, dict[str, str], dict[str, Any]]:
    """(net, {"feat": path, "mid": path}, description)."""
    arch, kw = resolve_spec(spec, in_shape)
    net = create_net(arch, in_shape, num_classes, **kw)
    taps = default_taps(arch, kw)
    if spec.feat_tap:
        taps["feat"] = spec.feat_tap
    if spec.mid_tap:
        taps["mid"] = spec.mid_tap
    desc = {"arch": arch, **kw, "in_shape": list(in_shape), "taps": dict(taps), "tap_io": spec.tap_io,
            "feat_dim": int(getattr(net, "feat_dim", 0))}
    return net, taps, desc


def tap_paths(taps: dict[str, str], needs: frozenset[str] | set[str], arch: str = "") -> list[str]:
    missing = [n for n in needs if n not in taps]
    if missing:
        raise ConfigError(f"net {arch!r}: no default {', '.join(missing)} tap; set feat_tap/mid_tap in the config")
    return sorted({taps[n] for n in needs})


def pool(t: Tensor) -> Tensor:
    return t.flatten(2).mean(2) if t.dim() > 2 else t.flatten(1)
