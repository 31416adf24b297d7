"""Trainable networks sized from the input shape, behind one registry.

``create_net(name, in_shape, num_classes=0, **kw)`` returns an ``nn.Module`` with

* ``feat_dim: int`` - size of the embedding returned by ``embed``;
* ``embed(x) -> (B, feat_dim)`` - flattened penultimate features;
* ``forward(x)`` - logits (B, num_classes) when ``num_classes > 0``, else ``embed(x)``.

Unknown options raise ConfigError naming the option. Helpers: ``count_params`` (here), ``functional``
(flat-parameter forward for unrolled training), ``hooks.FeatureTap`` (features by module path), ``heads``
(``EnsembleHead``, ``fuse``, ``ProjectionHead``).
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from ..registry import Registry
from ._common import count_params

__all__ = ["NETS", "count_params", "create_net", "net_names"]

NETS: Registry[Any] = Registry("net")

_MODULES = ["convnet", "lenet", "alexnet", "vgg", "resnet", "heads", "timm_net"]


def _ensure_loaded() -> None:
    for m in _MODULES:
        importlib.import_module(f"{__name__}.{m}")


def net_names() -> list[str]:
    _ensure_loaded()
    return NETS.names()


def create_net(name: str, in_shape: tuple[int, ...], num_classes: int = 0, **kw: Any) -> nn.Module:
    _ensure_loaded()
    return NETS.get(name)(in_shape=tuple(in_shape), num_classes=num_classes, **kw)
