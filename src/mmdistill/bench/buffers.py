"""Expert buffers of a suite: cache paths keyed by (dataset, data params, expert config), trained once per suite
before any cell starts its clock (trajectory-matching methods and MDM read them; see
:mod:`mmdistill.experts.buffers`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def buffer_path(dataset: str, data: dict[str, Any], experts: dict[str, Any]) -> Path:
    """Cache directory of the expert buffer trained with ``experts`` on ``dataset`` loaded with ``data``."""
    from ..data.root import cache_dir

    key = hashlib.sha256(json.dumps({"d": dataset, "data": data, "e": experts}, sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / "experts" / f"bench-vl-{dataset}-{experts.get('mode', 'full')}-{key}"


def ensure_buffers(buffers: list[tuple[str, dict[str, Any], dict[str, Any], Path]], data_root: str | None,
                   threads: int | None = None) -> None:
    """Train every missing buffer of ``buffers`` ((dataset, data, experts, path) tuples)."""
    from ..config import from_dict
    from ..data import load_dataset
    from ..experts.buffers import ExpertConfig, ensure_buffer
    from ..seed import set_threads

    set_threads(threads)
    loaded: dict[str, Any] = {}
    for ds, data, ex, path in buffers:
        cfg = from_dict(ExpertConfig, ex, where="suite expert buffer")
        if (path / "manifest.json").is_file() and len(list(path.glob("expert_*.safetensors"))) >= cfg.num_experts:
            continue
        key = json.dumps([ds, data], sort_keys=True)
        if key not in loaded:
            loaded[key] = load_dataset(ds, "train", data_root, **data)
        ensure_buffer(loaded[key], cfg, path, progress=False)


def main() -> int:
    """``python -m mmdistill.bench.buffers '<json [[dataset, data, experts, path], ...]>' [data_root] [threads]``"""
    import sys

    items = [(d, data, ex, Path(p)) for d, data, ex, p in json.loads(sys.argv[1])]
    data_root = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
    threads = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else None
    ensure_buffers(items, data_root, threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
