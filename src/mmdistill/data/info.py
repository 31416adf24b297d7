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
            if ds.class_names is not None and not out.get("classes"):
                out["classes"] = list(ds.class_names)
            if ds.meta.get("voices_per_split"):  # synthetic speech: which voices speak this split
                s["voices"] = ds.meta["voices_per_split"].get(split)
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


def format_info(info: dict[str, Any], width: int = 100) -> str:
    """``dataset_info`` as a readable summary: a field table, then one row per split (``--json`` has everything)."""
    import textwrap

    def field(name: str, value: Any) -> list[str]:
        text = value if isinstance(value, str) else "; ".join(
            f"{k}: {', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items()) \
            if isinstance(value, dict) else ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        lines = textwrap.wrap(text, width - 14) or [""]
        return [f"{name:12s}  {lines[0]}"] + [f"{'':12s}  {ln}" for ln in lines[1:]]

    out = [f"{info.get('name')} ({info.get('task', '?')}" + (f", pairing by {info['pairing']}" if info.get("pairing") else "")
           + ")"]
    for key, label in (("description", "description"), ("source", "source"), ("licence", "licence"),
                       ("speech", "speech"), ("voices", "voices"), ("styles", "styles")):
        if info.get(key):
            out += field(label, info[key])
    mods = info.get("modalities")
    if isinstance(mods, dict):
        for i, (m, d) in enumerate(mods.items()):
            out += field("modalities" if i == 0 else "", f"{m}: {d}")
    classes = info.get("classes")
    if isinstance(classes, list):
        out += field("classes", f"{len(classes)}: " + (", " if any(" " in str(c) for c in classes) else " ").join(map(str, classes[:30])) + (" ..." if len(classes) > 30 else ""))
    if info.get("params"):
        out += field("params", info["params"])
    if info.get("data_root"):
        out += field("data root", info["data_root"])
    splits = info.get("splits") or {}
    if splits:
        rows = [["split", "pairs", "shapes", "classes (pairs per class)"]]
        for name, s in splits.items():
            shapes = ", ".join(f"{m} {'x'.join(map(str, sh[1:]))}" for m, sh in (s.get("shapes") or {}).items())
            cc = s.get("class_counts")
            per = f"{len(cc)} ({min(cc)}-{max(cc)})" if cc else "-"
            rows.append([name, str(s.get("pairs", "?")), shapes, per])
        w = [max(len(r[i]) for r in rows) for i in range(4)]
        out.append("")
        out += ["  ".join(c.ljust(n) for c, n in zip(r, w)).rstrip() for r in rows]
    for key in ("note", "error"):
        if info.get(key):
            out.append("")
            out += field(key, info[key])
    out.append("")
    out.append("(full record, with norms and class balance: --json)")
    return "\n".join(out)
