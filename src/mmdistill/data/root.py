"""Data-root resolution: ``--data-root`` > ``$MMDISTILL_DATA`` > ``../shared/data`` next to the repo."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataMissingError

ENV_VAR = "MMDISTILL_DATA"


def _repo_root() -> Path:
    # src/mmdistill/data/root.py -> repo root is three levels above the package dir
    return Path(__file__).resolve().parents[3]


def candidate_roots(explicit: str | os.PathLike | None = None) -> list[Path]:
    out: list[Path] = []
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get(ENV_VAR)
    if env:
        return [Path(env).expanduser()]
    out.append(_repo_root().parent / "shared" / "data")
    out.append(Path.cwd().parent / "shared" / "data")
    return out


def resolve_data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The first existing candidate root (or the first candidate, so errors can name it)."""
    cands = candidate_roots(explicit)
    for c in cands:
        if c.is_dir():
            return c
    return cands[0]


def require_file(root: Path, rel: str, dataset: str, how: str) -> Path:
    """Return ``root/rel`` or raise an error naming the file, the dataset and how to obtain it."""
    p = root / rel
    if not p.is_file():
        raise DataMissingError(
            f"{p}: missing file for dataset {dataset!r}. {how} "
            f"(data root resolved from --data-root, ${ENV_VAR}, or ../shared/data next to the repo)"
        )
    return p


def cache_dir() -> Path:
    """Feature cache outside the working directory: $MMDISTILL_CACHE or ~/.cache/mmdistill."""
    env = os.environ.get("MMDISTILL_CACHE")
    base = Path(env).expanduser() if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mmdistill"
    base.mkdir(parents=True, exist_ok=True)
    return base
