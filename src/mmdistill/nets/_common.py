"""Shared pieces of the registered nets: the base class, strict kwargs, norms, padding and pooling rules."""

from __future__ import annotations

import difflib
import functools
import inspect
from typing import Any, Callable

from torch import Tensor, nn

from ..errors import ConfigError

NORMS = ("instance", "batch", "none")


class Net(nn.Module):
    """Base of every registered net (see ``nets/__init__``).

    Subclasses build ``self.features`` (or override :meth:`embed`) and call :meth:`_set_head`.
    ``forward`` is ``classifier(embed(x))``; the classifier is ``nn.Identity`` when ``num_classes == 0``.
    """

    feat_dim: int
    num_classes: int
    features: nn.Module

    def _set_head(self, feat_dim: int, num_classes: int) -> None:
        self.feat_dim = int(feat_dim)
        self.num_classes = int(num_classes)
        self.classifier: nn.Module = nn.Linear(feat_dim, num_classes) if num_classes > 0 else nn.Identity()

    def embed(self, x: Tensor) -> Tensor:
        """Flattened penultimate features, (B, feat_dim)."""
        return self.features(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.embed(x))


def strict_kwargs(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Wrap a net factory ``fn(in_shape, num_classes, *, opt=...)`` so unknown options raise ConfigError.

    Also checks ``num_classes`` and turns ``in_shape`` into a tuple of ints.
    """
    accepted = [p for p in inspect.signature(fn).parameters if p not in ("in_shape", "num_classes")]
    name = fn.__name__

    @functools.wraps(fn)
    def factory(in_shape: tuple[int, ...], num_classes: int = 0, **kw: Any) -> nn.Module:
        for key in kw:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"net {name!r}: unknown argument {key!r}{hint}; accepted: {', '.join(accepted) or '(none)'}"
                )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ConfigError(f"net {name!r}: num_classes must be an int >= 0, got {num_classes!r}")
        return fn(_shape(name, in_shape), num_classes, **kw)

    return factory


def _shape(name: str, in_shape: Any) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in in_shape)
    except (TypeError, ValueError):
        raise ConfigError(f"net {name!r}: in_shape must be a tuple of ints, got {in_shape!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ConfigError(f"net {name!r}: in_shape must be non-empty and positive, got {in_shape!r}")
    return shape


def image_shape(name: str, in_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Check that ``in_shape`` is (C, H, W)."""
    if len(in_shape) != 3:
        raise ConfigError(f"net {name!r}: in_shape must be (C, H, W), got {in_shape}")
    c, h, w = in_shape
    return c, h, w


def check_choice(name: str, arg: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"net {name!r}: {arg} must be one of {', '.join(choices)}, got {value!r}")


def check_positive(name: str, **values: Any) -> None:
    for arg, v in values.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"net {name!r}: {arg} must be an int >= 1, got {v!r}")


def make_norm(kind: str, channels: int) -> nn.Module:
    """``instance`` is DC's ``GroupNorm(C, C, affine=True)``; ``batch`` is BatchNorm2d; ``none`` Identity."""
    if kind == "instance":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


def check_norm_input(name: str, norm: str, h: int, w: int) -> None:
    """Instance norm over a 1×1 map has one value per group and fails in training: reject it up front."""
    if norm == "instance" and h * w == 1:
        raise ConfigError(
            f"net {name!r}: a conv output is 1×1, where instance norm is undefined; "
            "use fewer layers, a larger input, or norm='batch'/'none'"
        )


def first_padding(name: str, first_pad: int | str, in_shape: tuple[int, int, int], base: int) -> int:
    """Padding of the first conv, whose usual padding is ``base``.

    DC pads 28×28 MNIST by 2 extra pixels so the net sees 32×32:

    * ``"auto"`` (default): ``base + 2`` for 28×28 inputs only, else ``base``;
    * ``"dc"``: ``base + 2`` whenever the input has one channel - DC's literal rule, which AVDD
      inherits for 1×128×56 spectrograms;
    * an int: that padding.
    """
    c, h, w = in_shape
    if first_pad == "auto":
        return base + 2 if (h, w) == (28, 28) else base
    if first_pad == "dc":
        return base + 2 if c == 1 else base
    if isinstance(first_pad, bool) or not isinstance(first_pad, int) or first_pad < 0:
        raise ConfigError(f"net {name!r}: first_pad must be 'auto', 'dc' or an int >= 0, got {first_pad!r}")
    return first_pad


def conv_out(size: int, kernel: int, stride: int = 1, pad: int = 0) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def can_pool(h: int, w: int) -> bool:
    """A 2×2 pool is applied only while both sides stay >= 1 after it."""
    return min(h, w) >= 2


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
