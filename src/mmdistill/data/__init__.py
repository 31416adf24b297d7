"""Datasets: a registry of loaders returning :class:`PairedDataset` splits.

``load_dataset(name, split, data_root=None, **params)``. Each loader module registers itself with
``DATASETS.register(name)`` a class with ``load(split, root, **params) -> PairedDataset`` and
``info() -> dict`` (source, licence, how to obtain).
"""

from __future__ import annotations

import importlib
from typing import Any

from ..registry import Registry
from .paired import PairedDataset
from .root import resolve_data_root

DATASETS: Registry[Any] = Registry("dataset")

_MODULES = ["av_digits", "emoji", "coco_mini", "karpathy", "av_prepared", "spoken_emoji"]


def _ensure_loaded() -> None:
    for m in _MODULES:
        importlib.import_module(f"{__name__}.{m}")


def dataset_names() -> list[str]:
    _ensure_loaded()
    return DATASETS.names()


def get_dataset_spec(name: str) -> Any:
    _ensure_loaded()
    return DATASETS.get(name)


def load_dataset(name: str, /, split: str = "train", data_root: str | None = None, **params: Any) -> PairedDataset:
    """Load one split. ``name`` is positional-only so a dataset param may itself be called ``name``."""
    spec = get_dataset_spec(name)
    root = resolve_data_root(data_root)
    return spec.load(split=split, root=root, **params)


__all__ = ["DATASETS", "PairedDataset", "load_dataset", "dataset_names", "get_dataset_spec", "resolve_data_root"]


def dataset_info(name: str, /, data_root: str | None = None, **params: Any) -> dict[str, Any]:
    """Static ``info()`` of a dataset plus its split summaries (see :mod:`mmdistill.data.info`)."""
    from .info import dataset_info as _info

    return _info(name, data_root, **params)


__all__ += ["dataset_info"]
