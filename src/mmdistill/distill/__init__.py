"""Distillation methods behind one registry (``METHODS``) and one run loop (``run``)."""

from __future__ import annotations

import importlib

from .base import METHODS, Budget, Distiller, run

_MODULES = ["mmdistill.distill.coreset", "mmdistill.distill.mtt_vl", "mmdistill.distill.tesla_vl",
            "mmdistill.distill.lors", "mmdistill.distill.repblend"]
_MODULES += ["mmdistill.distill.dm", "mmdistill.distill.avdd", "mmdistill.distill.davdd"]  # audio-visual
_MODULES += ["mmdistill.distill.mdm"]  # multimodal distribution matching
_MODULES += ["mmdistill.distill.covmatch", "mmdistill.distill.raha"]  # trajectory-free, online proxy


def _ensure_loaded() -> None:
    for m in _MODULES:
        importlib.import_module(m)


def method_names() -> list[str]:
    _ensure_loaded()
    return METHODS.names()


def get_method(name: str) -> type[Distiller]:
    _ensure_loaded()
    return METHODS.get(name)


__all__ = ["METHODS", "Budget", "Distiller", "run", "method_names", "get_method"]
