"""Where the full-data reference of a (dataset, data parameters, protocol fields) lives.

The upper bound every distilled set is measured against is the same evaluation protocol trained on the whole
training split (``mmdistill evaluate --real``). It depends only on the dataset, its loader parameters and the
protocol fields a run overrides, so it is computed once and cached under
``$MMDISTILL_CACHE/full-data/<dataset>-<key>/`` (per-seed files, resumable); reports and the demo read it
from there to show "% of the full-data score retained".
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..data.root import cache_dir


def reference_key(dataset: str, data: dict[str, Any] | None, eval_fields: dict[str, Any] | None) -> str:
    blob = json.dumps({"dataset": dataset, "data": data or {}, "eval": {k: v for k, v in (eval_fields or {}).items()
                                                                       if k != "seeds"}}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def full_reference_dir(dataset: str, data: dict[str, Any] | None = None,
                       eval_fields: dict[str, Any] | None = None) -> Path:
    """``$MMDISTILL_CACHE/full-data/<dataset>-<key>`` (not created)."""
    return cache_dir() / "full-data" / f"{dataset}-{reference_key(dataset, data, eval_fields)}"
