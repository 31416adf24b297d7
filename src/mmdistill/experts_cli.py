"""``mmdistill experts``: read the expert settings from a run config and train the buffer.

Accepts a method's run config (``dataset``, ``data``, ``params.experts``, optional ``params.buffer``) or a
file with a top-level ``experts:`` mapping. ``--set`` overrides use the file's key paths
(e.g. ``params.experts.num_experts=2``). The buffer goes to ``--out``, else ``params.buffer``, else the
cache path the methods look in (:func:`~mmdistill.experts.buffers.default_buffer_dir`).
"""

from __future__ import annotations

from pathlib import Path

from .config import apply_overrides, from_dict, load_yaml
from .data import load_dataset
from .errors import ConfigError
from .experts.buffers import ExpertBuffer, ExpertConfig, train_experts


def train_from_config(config: str | Path, overrides: list[str] | None = None, *, dataset: str | None = None,
                      out: str | Path | None = None, data_root: str | None = None, progress: bool = True) -> ExpertBuffer:
    data = apply_overrides(load_yaml(config), overrides or [])
    params = data.get("params") or {}
    if data.get("method") and "experts" in data.get("params", {}):
        from .distill import get_method  # the method's own defaults (e.g. RepBlend's mode "heads")

        method_cfg = from_dict(get_method(data["method"]).Config, params, where=f"{config}: params")
        cfg = method_cfg.experts
    elif "experts" in data:
        cfg = from_dict(ExpertConfig, data["experts"], where=f"{config}: experts")
    else:
        raise ConfigError(f"{config}: no expert settings (expected 'params.experts' with 'method:', or a top-level 'experts:')")
    name = dataset or data.get("dataset")
    if not name:
        raise ConfigError(f"{config}: no dataset (--dataset or 'dataset:')")
    ds = load_dataset(name, "train", data_root, **(data.get("data") or {}))
    target = out or params.get("buffer")
    return train_experts(ds, cfg, target, progress=progress)
