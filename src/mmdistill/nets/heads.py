"""Heads over feature vectors: registered ``linear``, ``mlp``, ``projection``; AVDD's ensemble head and fusion.

The registered heads take ``in_shape=(d,)`` (any shape is flattened) and follow the net contract:
``embed`` is the head's output, ``forward`` adds a linear classifier when ``num_classes > 0``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from . import NETS
from ._common import Net, check_positive, strict_kwargs

FUSIONS = ("ensemble", "sum_logits")


class ProjectionHead(nn.Module):
    """MTT-VL / LoRS text projection head, with the original attribute names.

    Linear(d→p) → GELU → Linear(p→p) → Dropout → + the first linear's output → LayerNorm(p).
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.projection = nn.Linear(in_dim, out_dim)
        self.gelu = nn.GELU()
        self.fc = nn.Linear(out_dim, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        projected = self.projection(x)
        return self.layer_norm(self.dropout(self.fc(self.gelu(projected))) + projected)


class Head(Net):
    def __init__(self, features: nn.Sequential, feat_dim: int, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self._set_head(feat_dim, num_classes)


@NETS.register("linear")
@strict_kwargs
def linear(in_shape: tuple[int, ...], num_classes: int = 0, *, out_dim: int | None = None) -> Head:
    """``embed`` = Linear(d→out_dim), or the flattened input itself when ``out_dim`` is None (linear probe)."""
    d = math.prod(in_shape)
    if out_dim is None:
        return Head(nn.Sequential(nn.Flatten()), d, num_classes)
    check_positive("linear", out_dim=out_dim)
    return Head(nn.Sequential(nn.Flatten(), nn.Linear(d, out_dim)), out_dim, num_classes)


@NETS.register("mlp")
@strict_kwargs
def mlp(in_shape: tuple[int, ...], num_classes: int = 0, *, hidden: int = 512, out_dim: int | None = None) -> Head:
    """Linear(d→hidden) → ReLU [→ Linear(hidden→out_dim)]; e.g. the text head 384→512→256."""
    check_positive("mlp", hidden=hidden)
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(math.prod(in_shape), hidden), nn.ReLU()]
    if out_dim is not None:
        check_positive("mlp", out_dim=out_dim)
        layers.append(nn.Linear(hidden, out_dim))
    return Head(nn.Sequential(*layers), out_dim or hidden, num_classes)


@NETS.register("projection")
@strict_kwargs
def projection(in_shape: tuple[int, ...], num_classes: int = 0, *, out_dim: int = 256, dropout: float = 0.1) -> Head:
    """:class:`ProjectionHead` d→out_dim (the papers use 768→2304; our CPU default is 256)."""
    check_positive("projection", out_dim=out_dim)
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"net 'projection': dropout must be in [0, 1), got {dropout!r}")
    return Head(nn.Sequential(nn.Flatten(), ProjectionHead(math.prod(in_shape), out_dim, dropout)), out_dim, num_classes)


class EnsembleHead(nn.Module):
    """AVDD's ``Classifier_Ensemble``: ``fc_a`` and ``fc_v`` map each
    modality's embedding to logits.

    Init follows AVDD's ``weights_init``: Linear weights ~ N(0, std=1e-4), biases keep the PyTorch default.
    Unlike AVDD's code, either input may be None for unimodal evaluation.
    """

    def __init__(self, d_a: int, d_v: int, num_classes: int) -> None:
        super().__init__()
        self.fc_a = nn.Linear(d_a, num_classes)
        self.fc_v = nn.Linear(d_v, num_classes)
        for fc in (self.fc_a, self.fc_v):
            nn.init.normal_(fc.weight, mean=0.0, std=1e-4)

    def forward(self, f_a: Tensor | None, f_v: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        return (None if f_a is None else self.fc_a(f_a)), (None if f_v is None else self.fc_v(f_v))


def fuse(logits_a: Tensor | None, logits_v: Tensor | None, mode: str = "ensemble") -> Tensor:
    """Late fusion of per-modality logits into class scores.

    ``ensemble`` (AVDD) returns the mean of the softmaxes (probabilities); ``sum_logits`` returns the sum of
    the logits. A missing modality (None) is left out, so one input gives that modality's own scores.
    """
    if mode not in FUSIONS:
        raise ConfigError(f"fusion mode must be one of {', '.join(FUSIONS)}, got {mode!r}")
    present = [t for t in (logits_a, logits_v) if t is not None]
    if not present:
        raise ValueError("fuse() needs at least one of logits_a, logits_v")
    if mode == "ensemble":
        return torch.stack([t.softmax(dim=-1) for t in present]).mean(0)
    return torch.stack(present).sum(0)
