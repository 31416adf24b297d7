"""Seeds everywhere: one call makes python, numpy and torch deterministic."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def generator(seed: int) -> torch.Generator:
    """A CPU torch generator with a fixed seed (use it instead of the global RNG)."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from several parts (e.g. base seed, iteration, class)."""
    import hashlib

    h = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def set_threads(n: int | None = None) -> None:
    """Use ``n`` intra-op threads (default: all cores, capped at the env's OMP_NUM_THREADS)."""
    if n is None:
        env = os.environ.get("OMP_NUM_THREADS")
        n = int(env) if env else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, n))
