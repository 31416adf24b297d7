"""The KD loss registry ``KD_LOSSES``: importing this module registers every loss.

Names (CLI ``--method`` and benchmark rows): ``no-kd``, ``kd``, ``dkd``, ``dist``, ``fitnet``, ``pkd``,
``c2kd``, ``fd-cmkd``. Variants and controls (``fd-cmkd-permuted``, ``dkd-cifar``, ...) are settings of a registered
loss, kept as configs (``configs/kd/variants/<name>.yaml``: ``method`` + ``params``), not in code.
"""

from __future__ import annotations

from . import c2kd, fd_cmkd, feature_losses, logit_losses  # noqa: F401  (registration)
from .base import KD_LOSSES, Dims, KDInputs, KDLoss

def get_kd_loss(name: str) -> type[KDLoss]:
    """The registered KD loss class ``name`` (ConfigError naming the known ones otherwise)."""
    return KD_LOSSES.get(name)


def kd_method_names() -> list[str]:
    return KD_LOSSES.names()


__all__ = ["KD_LOSSES", "Dims", "KDInputs", "KDLoss", "get_kd_loss", "kd_method_names"]
