"""DC-style small-input AlexNet: 5 convs sized for 32×32 (DC's ``AlexNet``).

Conv5×5 → ReLU → MaxPool2 → Conv5×5 → ReLU → MaxPool2 → 3× (Conv3×3 → ReLU) → MaxPool2, channels
``width × (1, 1.5, 2, 1.5, 1.5)`` (``width=128`` is DC's 128-192-256-192-192; the CPU default is 32).
A final ``AdaptiveAvgPool2d(4, 4)`` is the identity at 32 px and lets larger inputs (64, 224 px,
spectrograms) keep the same ``feat_dim = 16 · 1.5 · width``. Pools are skipped once a side would drop
below 1. 28×28 inputs get first-conv padding 4 (→ 32×32), see ``first_padding``.
"""

from __future__ import annotations

from torch import nn

from . import NETS
from ._common import Net, can_pool, check_positive, conv_out, first_padding, image_shape, strict_kwargs


class AlexNet(Net):
    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, width: int, first_pad: int) -> None:
        super().__init__()
        c, h, w = in_shape
        chans = [width, width * 3 // 2, width * 2, width * 3 // 2, width * 3 // 2]
        # (kernel, padding, pool after)
        plan = [(5, first_pad, True), (5, 2, True), (3, 1, False), (3, 1, False), (3, 1, True)]
        layers: list[nn.Module] = []
        for out, (k, pad, pool) in zip(chans, plan):
            layers += [nn.Conv2d(c, out, kernel_size=k, padding=pad), nn.ReLU()]
            h, w = conv_out(h, k, pad=pad), conv_out(w, k, pad=pad)
            if pool and can_pool(h, w):
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        layers.append(nn.AdaptiveAvgPool2d((4, 4)))
        self.features = nn.Sequential(*layers)
        self._set_head(c * 16, num_classes)


@NETS.register("alexnet")
@strict_kwargs
def alexnet(
    in_shape: tuple[int, ...], num_classes: int = 0, *, width: int = 32, first_pad: int | str = "auto"
) -> AlexNet:
    shape = image_shape("alexnet", in_shape)
    check_positive("alexnet", width=width)
    return AlexNet(shape, num_classes, width, first_padding("alexnet", first_pad, shape, base=2))
