"""DC/DM-style ConvNet.

``depth`` blocks of Conv3×3 → norm → act → pool2, then flatten. Width 128 is the papers' default; the
CPU default is 32. ``norm="instance"`` is DC's ``GroupNorm(C, C, affine=True)``.

* Pooling stops once a side would drop below 1 (deep nets on small inputs keep working).
* ``final_pool=(h, w)`` replaces the LAST block's pooling by ``AdaptiveAvgPool2d((h, w))``, as AVDD's
  audio net does, so audio (1×128×56, depth 3) and visual (3×224×224, depth 5) embeddings are both
  128·7·7 = 6272-d at width 128.
* ``first_pad``: see :func:`~mmdistill.nets._common.first_padding` (``"auto"`` pads 28×28 to 32×32;
  ``"dc"`` is DC/AVDD's "pad 3 whenever channel == 1").

Submodule paths (for :class:`~mmdistill.nets.hooks.FeatureTap`): ``features.<i>.{conv,norm,act,pool}``.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..errors import ConfigError
from . import NETS
from ._common import (
    NORMS,
    Net,
    can_pool,
    check_choice,
    check_norm_input,
    check_positive,
    conv_out,
    first_padding,
    image_shape,
    make_norm,
    strict_kwargs,
)

ACTS = ("relu", "leakyrelu", "sigmoid")
POOLS = ("avg", "max", "none")


def _act(kind: str) -> nn.Module:
    return {"relu": nn.ReLU, "leakyrelu": nn.LeakyReLU, "sigmoid": nn.Sigmoid}[kind]()


class ConvNet(Net):
    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        width: int,
        depth: int,
        norm: str,
        net_act: str,
        pooling: str,
        first_pad: int,
        final_pool: tuple[int, int] | None,
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        blocks = []
        for d in range(depth):
            pad = first_pad if d == 0 else 1
            h, w = conv_out(h, 3, pad=pad), conv_out(w, 3, pad=pad)
            check_norm_input("convnet", norm, h, w)
            layers: OrderedDict[str, nn.Module] = OrderedDict(
                conv=nn.Conv2d(c if d == 0 else width, width, kernel_size=3, padding=pad),
                norm=make_norm(norm, width),
                act=_act(net_act),
            )
            if d == depth - 1 and final_pool is not None:
                layers["pool"] = nn.AdaptiveAvgPool2d(final_pool)
                h, w = final_pool
            elif pooling != "none" and can_pool(h, w):
                layers["pool"] = nn.AvgPool2d(2) if pooling == "avg" else nn.MaxPool2d(2)
                h, w = h // 2, w // 2
            blocks.append(nn.Sequential(layers))
        self.features = nn.Sequential(*blocks)
        self._set_head(width * h * w, num_classes)


@NETS.register("convnet")
@strict_kwargs
def convnet(
    in_shape: tuple[int, ...],
    num_classes: int = 0,
    *,
    width: int = 32,
    depth: int = 3,
    norm: str = "instance",
    net_act: str = "relu",
    pooling: str = "avg",
    first_pad: int | str = "auto",
    final_pool: tuple[int, int] | list[int] | None = None,
) -> ConvNet:
    name = "convnet"
    shape = image_shape(name, in_shape)
    check_positive(name, width=width, depth=depth)
    check_choice(name, "norm", norm, NORMS)
    check_choice(name, "net_act", net_act, ACTS)
    check_choice(name, "pooling", pooling, POOLS)
    fp: tuple[int, int] | None = None
    if final_pool is not None:
        if isinstance(final_pool, (str, int)) or len(final_pool) != 2:
            raise ConfigError(f"net {name!r}: final_pool must be None or (h, w), got {final_pool!r}")
        fp = (final_pool[0], final_pool[1])
        check_positive(name, final_pool_h=fp[0], final_pool_w=fp[1])
    pad = first_padding(name, first_pad, shape, base=1)
    return ConvNet(shape, num_classes, width, depth, norm, net_act, pooling, pad, fp)
