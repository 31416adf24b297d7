"""Minibatch index streams shared by the evaluation trainers."""

from __future__ import annotations

from typing import Iterator

import torch


def minibatches(n: int, batch_size: int, steps: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """``steps`` batches of ``batch_size`` row indices, drawn epoch by epoch without replacement.

    A new seeded permutation starts whenever the current one cannot fill a whole batch (the tail is
    dropped), so every step sees exactly ``batch_size`` rows.
    """
    perm = torch.randperm(n, generator=gen)
    pos = 0
    for _ in range(steps):
        if pos + batch_size > n:
            perm = torch.randperm(n, generator=gen)
            pos = 0
        yield perm[pos:pos + batch_size]
        pos += batch_size
