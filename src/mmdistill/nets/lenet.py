"""Classic LeNet-5 as in DC.

Conv5×5(6) → ReLU → MaxPool2 → Conv5×5(16) → ReLU → MaxPool2 → FC 120 → ReLU → FC 84 → ReLU → classifier.
The first FC is sized from the input (400 inputs at 28 and 32 px, 2704 at 64 px). ``embed`` is the
84-d output of the second FC. 28×28 inputs get padding 2 so they behave like 32×32 (DC's MNIST rule);
``first_pad`` overrides this as in :func:`~mmdistill.nets._common.first_padding`.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from . import NETS
from ._common import Net, conv_out, first_padding, image_shape, strict_kwargs


class LeNet(Net):
    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, first_pad: int) -> None:
        super().__init__()
        c, h, w = in_shape
        for pad in (first_pad, 0):
            h, w = conv_out(h, 5, pad=pad) // 2, conv_out(w, 5, pad=pad) // 2
        if min(h, w) < 1:
            raise ConfigError(f"net 'lenet': input {in_shape} is too small (needs at least 16×16 without padding)")
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, kernel_size=5, padding=first_pad),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * h * w, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
        )
        self._set_head(84, num_classes)


@NETS.register("lenet")
@strict_kwargs
def lenet(in_shape: tuple[int, ...], num_classes: int = 0, *, first_pad: int | str = "auto") -> LeNet:
    shape = image_shape("lenet", in_shape)
    return LeNet(shape, num_classes, first_padding("lenet", first_pad, shape, base=0))
