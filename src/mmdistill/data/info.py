"""``dataset_info(name)``: a loader's static ``info()`` plus summaries of the splits it actually loads.

Backs ``mmdistill data info NAME``. Datasets that need user paths (``karpathy``, ``av-prepared``) give only
the static part unless those params are passed; a dataset whose files are absent reports the error instead
of raising.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, DataError
from ._common import SPLITS
from .root import resolve_data_root

NEEDS_PATHS = {"karpathy": ("ann_dir", "train_file", "test_file"), "av-prepared": ("path",)}


def dataset_info(name: str, /, data_root: str | None = None, **params: Any) -> dict[str, Any]:
    """Static description (task, source, licence, how to obtain, default params) + per-split summaries."""
    from . import get_dataset_spec

    spec = get_dataset_spec(name)
    out: dict[str, Any] = {"name": name, **spec.info()}
    needed = NEEDS_PATHS.get(name)
    if needed and not any(params.get(k) for k in needed):
        out["splits_loaded"] = False
        out["note"] = f"pass {' or '.join(needed)} to summarise the splits"
        return out
    root = resolve_data_root(data_root)
    out["data_root"] = str(root)
    summaries: dict[str, Any] = {}
    try:
        for split in SPLITS:
            ds = spec.load(split=split, root=root, **params)
            s = ds.summary()
            if ds.class_names is not None and "class_counts" in s:
                s["class_balance"] = dict(zip(ds.class_names, s["class_counts"]))
                if ds.task == "retrieval" and ds.labels is not None:
                    s["image_class_counts"] = torch.bincount(ds.labels, minlength=len(ds.class_names)).tolist()
            if "norm" in ds.meta:
                s["norm"] = ds.meta["norm"]
            summaries[split] = s
    except ConfigError:
        raise
    except DataError as e:
        out["splits_loaded"] = False
        out["error"] = str(e)
        return out
    out["splits_loaded"] = True
    out["splits"] = summaries
    return out
