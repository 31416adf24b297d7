"""The KD loss registry ``KD_LOSSES``: importing this module registers every loss.

Names (CLI ``--method`` and benchmark rows): ``no-kd``, ``kd``, ``dkd``, ``dist``, ``fitnet``, ``pkd``,
``c2kd``, ``fd-cmkd``. Variants (``fd-cmkd-permuted``, ``fd-cmkd-heads-only``, ...; ``dkd-cifar``) are settings of a registered
loss, see :data:`PRESETS`.
"""

from __future__ import annotations

from typing import Any

from . import c2kd, fd_cmkd, feature_losses, logit_losses  # noqa: F401  (registration)
from .base import KD_LOSSES, Dims, KDInputs, KDLoss

# benchmark/CLI method label -> (registered loss, params overriding its defaults)
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    # mdistiller's CIFAR-100 DKD setting (warm-up scaled from 20 of 240 epochs to short runs); collapses cross-modally
    "dkd-cifar": ("dkd", {"alpha": 1.0, "beta": 8.0, "temperature": 4.0, "warmup_epochs": 2}),
    "fd-cmkd-permuted": ("fd-cmkd", {"channel_permutation_control": True}),
    "fd-cmkd-heads-only": ("fd-cmkd", {"lambda_low": 0.0, "lambda_high": 0.0}),
    "fd-cmkd-learned-split": ("fd-cmkd", {"learnable_split": True}),
    # band losses summed over D instead of averaged: D times larger alignment gradient
    "fd-cmkd-sum": ("fd-cmkd", {"reduction": "sum"}),
}


def get_kd_loss(name: str) -> type[KDLoss]:
    """The registered KD loss class ``name`` (ConfigError naming the known ones otherwise)."""
    return KD_LOSSES.get(name)


def kd_method_names() -> list[str]:
    return KD_LOSSES.names()


def resolve_method(name: str) -> tuple[str, dict[str, Any]]:
    """A method label (registered loss or preset) -> (loss name, default params of the preset)."""
    if name in PRESETS:
        base, params = PRESETS[name]
        return base, dict(params)
    KD_LOSSES.get(name)  # raises ConfigError naming the known methods
    return name, {}


__all__ = ["KD_LOSSES", "Dims", "KDInputs", "KDLoss", "PRESETS", "get_kd_loss", "kd_method_names", "resolve_method"]
