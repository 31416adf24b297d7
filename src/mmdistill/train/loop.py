"""The one supervised training loop: minibatch indices in, one optimiser step per batch.

The caller owns what differs between recipes: how batches are drawn (a seeded generator of index tensors), what
a batch's loss is (forward pass, augmentation, bookkeeping), the optimiser and its schedule. The loop fixes the
order of operations - ``before(i)``, ``loss = batch_loss(idx)``, zero the grads, backward, optimiser step,
scheduler step, ``after(i, loss)`` - so that every recipe built on it is bit-for-bit reproducible from its seed.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor


def fit(opt: torch.optim.Optimizer, batches: Iterable[Tensor], batch_loss: Callable[[Tensor], Tensor], *,
        sched: torch.optim.lr_scheduler.LRScheduler | None = None, before: Callable[[int], None] | None = None,
        after: Callable[[int, Tensor], None] | None = None) -> int:
    """One optimiser step per batch of ``batches``; returns the number of steps taken."""
    i = -1
    for i, idx in enumerate(batches):
        if before is not None:
            before(i)
        loss = batch_loss(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if after is not None:
            after(i, loss)
    return i + 1


def epoch_batches(n: int, batch_size: int, epochs: int, gen: torch.Generator, *, drop_last: bool = False):
    """Index tensors of ``epochs`` passes over ``n`` rows, a fresh ``gen`` permutation per epoch (drawn lazily,
    when the epoch starts); ``drop_last`` keeps only full batches."""
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        stop = n - n % batch_size if drop_last else n
        for s in range(0, stop, batch_size):
            yield perm[s:s + batch_size]
