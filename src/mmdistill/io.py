"""Atomic file writes and hashing: nothing half-written on a crash.

Every writer goes to a temporary file in the destination directory, fsyncs it and
renames it over the target (``os.replace`` is atomic on POSIX).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def _atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def remove_stale_temps(path: str | os.PathLike) -> int:
    """Delete the temporary files killed atomic writes of ``path`` left behind (``.<name>.*.tmp``); their count.

    Only for a writer that owns ``path`` (no other process writing it at the same time), e.g. a run resuming.
    """
    path = Path(path)
    if not path.parent.is_dir():
        return 0
    n = 0
    for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return _atomic(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_write_with(path: str | os.PathLike, writer: Callable[[str], None]) -> Path:
    """Atomically create ``path`` with a writer that takes a file name (e.g. ``torch.save``)."""
    return _atomic(path, lambda p: writer(str(p)))


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one JSON line and flush it (a log line is complete or absent)."""
    line = json.dumps(obj, default=_json_default) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())
