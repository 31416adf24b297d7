"""DC-style small-input VGG11 (DC's ``VGG11``).

Config ``[w, M, 2w, M, 4w, 4w, M, 8w, 8w, M, 8w, 8w, M]``: Conv3×3 → norm → ReLU, MaxPool2 at ``M``.
``width=64`` is the standard VGG11 (64 … 512, i.e. doubling capped at 8·width); the CPU default is 32.
At 32 px the last map is 1×1; a final ``AdaptiveAvgPool2d(1)`` gives larger inputs the same
``feat_dim = 8 · width``. Pools are skipped once a side would drop below 1; 28×28 inputs get first-conv
padding 3 (→ 32×32), see ``first_padding``.
"""

from __future__ import annotations

from torch import nn

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

VGG11 = (1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M")


class VGG(Net):
    def __init__(
        self, in_shape: tuple[int, int, int], num_classes: int, width: int, norm: str, first_pad: int
    ) -> None:
        super().__init__()
        c, h, w = in_shape
        layers: list[nn.Module] = []
        for i, item in enumerate(VGG11):
            if item == "M":
                if can_pool(h, w):
                    layers.append(nn.MaxPool2d(2))
                    h, w = h // 2, w // 2
                continue
            out, pad = width * int(item), first_pad if i == 0 else 1
            layers += [nn.Conv2d(c, out, kernel_size=3, padding=pad), make_norm(norm, out), nn.ReLU()]
            h, w, c = conv_out(h, 3, pad=pad), conv_out(w, 3, pad=pad), out
            check_norm_input("vgg11", norm, h, w)
        layers.append(nn.AdaptiveAvgPool2d(1))
        self.features = nn.Sequential(*layers)
        self._set_head(c, num_classes)


@NETS.register("vgg11")
@strict_kwargs
def vgg11(
    in_shape: tuple[int, ...],
    num_classes: int = 0,
    *,
    width: int = 32,
    norm: str = "instance",
    first_pad: int | str = "auto",
) -> VGG:
    shape = image_shape("vgg11", in_shape)
    check_positive("vgg11", width=width)
    check_choice("vgg11", "norm", norm, NORMS)
    return VGG(shape, num_classes, width, norm, first_padding("vgg11", first_pad, shape, base=1))
