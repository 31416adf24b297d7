"""Flat-parameter, functional forward passes for unrolled training (MTT, TESLA-style constant-memory
matching, unrolled contrastive students, (b'), (c)).

``flat, spec = flat_params(net)`` gives one 1-D tensor θ; ``functional_forward(net, θ, spec, x)`` runs ``net``
with θ in place of its parameters via :func:`torch.func.functional_call`, so gradients flow to θ (and to
``x``) and θ can be updated out of place step after step.

Buffers are the module's own: with ``norm="batch"`` in ``train()`` mode this path normalises with the batch
statistics (as MTT does) and updates the module's running statistics as a side effect, exactly like
``net(x)``; in ``eval()`` mode it uses the running statistics. Dropout follows the module's mode too.
That side effect works with ``torch.autograd.grad`` (incl. ``create_graph=True``) but not inside
``torch.func.grad``/``vmap``, which forbid mutating captured buffers: call
``torch.func.replace_all_batch_norm_modules_(net)`` first if you need those transforms with batch norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ParamSpec:
    """Names, shapes and sizes of the parameters packed into a flat vector, in ``named_parameters`` order."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    numels: tuple[int, ...]

    @property
    def numel(self) -> int:
        return sum(self.numels)


def flat_params(module: nn.Module) -> tuple[Tensor, ParamSpec]:
    """Concatenate ``module``'s parameters into a new detached 1-D tensor (set ``requires_grad`` yourself)."""
    named = list(module.named_parameters())
    spec = ParamSpec(
        names=tuple(n for n, _ in named),
        shapes=tuple(p.shape for _, p in named),
        numels=tuple(p.numel() for _, p in named),
    )
    flat = torch.cat([p.detach().reshape(-1) for _, p in named]) if named else torch.zeros(0)
    return flat, spec


def unflatten(flat: Tensor, spec: ParamSpec) -> dict[str, Tensor]:
    """Split ``flat`` back into named tensors (views: gradients flow back to ``flat``)."""
    if flat.dim() != 1 or flat.numel() != spec.numel:
        raise ValueError(f"flat parameter vector must be 1-D with {spec.numel} elements, got shape {tuple(flat.shape)}")
    return {n: t.view(s) for n, t, s in zip(spec.names, flat.split(list(spec.numels)), spec.shapes)}


class _Method(nn.Module):
    """Calls ``module.<method>`` as ``forward`` so ``functional_call`` can run any method."""

    def __init__(self, module: nn.Module, method: str) -> None:
        super().__init__()
        self.m = module
        self.method = method

    def forward(self, x: Tensor) -> Tensor:
        return getattr(self.m, self.method)(x)


def functional_forward(module: nn.Module, flat: Tensor, spec: ParamSpec, x: Tensor, method: str = "forward") -> Tensor:
    """``module.<method>(x)`` with the parameters taken from ``flat`` (see the module docstring for buffers)."""
    if not callable(getattr(module, method, None)):
        raise AttributeError(f"{type(module).__name__} has no method {method!r}")
    state = {f"m.{n}": t for n, t in unflatten(flat, spec).items()}
    state.update({f"m.{n}": b for n, b in module.named_buffers()})
    return torch.func.functional_call(_Method(module, method), state, (x,))
