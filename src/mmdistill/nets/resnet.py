"""ResNet-18 with a pre-ReLU feature tap.

* Stem: ``"cifar"`` = Conv3×3 stride 1 → norm → ReLU (no max-pool); ``"imagenet"`` = Conv7×7 stride 2 →
  norm → ReLU → MaxPool3×3 stride 2. ``"auto"`` (default) picks ``imagenet`` when both sides are
  >= 128 px, else ``cifar``.
* Stages of 2 BasicBlocks with ``width × (1, 2, 4, 8)`` channels, strides 1, 2, 2, 2; ``feat_dim = 8·width``
  (``width=64`` is the standard 11.2M-param net; the CPU default is 16, 701k params with 10 classes).
* ``norm``: ``batch`` (default) or ``instance`` (DC's ``GroupNorm(C, C)``).

FD-CMKD distils the global-average-pooled output of the last block of ``layer4`` taken BEFORE its final
ReLU. That block's ReLU is therefore lifted out into ``relu4``, so the graph equals a standard ResNet-18
and both taps are plain module outputs: ``layer4`` is the pre-ReLU map, ``relu4`` the post-ReLU map.
:meth:`ResNet18.embed` pools the post-ReLU map, :meth:`ResNet18.embed_pre_relu` the pre-ReLU one.
"""

from __future__ import annotations

from torch import Tensor, nn

from . import NETS
from ._common import Net, check_choice, check_positive, image_shape, make_norm, strict_kwargs

STEMS = ("auto", "cifar", "imagenet")


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str, final_act: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)
        self.norm1 = make_norm(norm, cout)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, kernel_size=3, stride=1, padding=1, bias=False)
        self.norm2 = make_norm(norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, kernel_size=1, stride=stride, bias=False), make_norm(norm, cout))
        self.act: nn.Module = nn.ReLU() if final_act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.norm2(self.conv2(self.act1(self.norm1(self.conv1(x)))))
        return self.act(out + self.shortcut(x))


def _stage(cin: int, cout: int, stride: int, norm: str, final_act: bool = True) -> nn.Sequential:
    return nn.Sequential(BasicBlock(cin, cout, stride, norm), BasicBlock(cout, cout, 1, norm, final_act=final_act))


class ResNet18(Net):
    def __init__(self, in_shape: tuple[int, int, int], num_classes: int, width: int, norm: str, stem: str) -> None:
        super().__init__()
        c = in_shape[0]
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(c, width, kernel_size=7, stride=2, padding=3, bias=False),
                make_norm(norm, width),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(c, width, kernel_size=3, stride=1, padding=1, bias=False), make_norm(norm, width), nn.ReLU()
            )
        w = width
        self.layer1 = _stage(w, w, 1, norm)
        self.layer2 = _stage(w, 2 * w, 2, norm)
        self.layer3 = _stage(2 * w, 4 * w, 2, norm)
        self.layer4 = _stage(4 * w, 8 * w, 2, norm, final_act=False)
        self.relu4 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self._set_head(8 * width, num_classes)

    def pre_relu_map(self, x: Tensor) -> Tensor:
        """Output of the last block of ``layer4`` before its ReLU, (B, 8·width, h, w)."""
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))

    def embed(self, x: Tensor) -> Tensor:
        return self.pool(self.relu4(self.pre_relu_map(x))).flatten(1)

    def embed_pre_relu(self, x: Tensor) -> Tensor:
        """Global-average-pooled pre-ReLU features (FD-CMKD's ``pre``), (B, 8·width)."""
        return self.pool(self.pre_relu_map(x)).flatten(1)

    def embed_with_pre_relu(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(embed(x), embed_pre_relu(x))`` from one pass; logits are ``classifier`` of the first."""
        pre = self.pre_relu_map(x)
        return self.pool(self.relu4(pre)).flatten(1), self.pool(pre).flatten(1)


@NETS.register("resnet18")
@strict_kwargs
def resnet18(
    in_shape: tuple[int, ...], num_classes: int = 0, *, width: int = 16, norm: str = "batch", stem: str = "auto"
) -> ResNet18:
    shape = image_shape("resnet18", in_shape)
    check_positive("resnet18", width=width)
    check_choice("resnet18", "norm", norm, ("batch", "instance"))
    check_choice("resnet18", "stem", stem, STEMS)
    if stem == "auto":
        stem = "imagenet" if min(shape[1:]) >= 128 else "cifar"
    return ResNet18(shape, num_classes, width, norm, stem)
