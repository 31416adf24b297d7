"""Image encoders from timm (optional dependency), for paper-scale image-text settings.

``nfnet_l0``: the NFNet-l0 the image-text distillation papers use (MTT-VL, LoRS, RepBlend, MDM; Brock et al. 2021,
arXiv 2102.06171), ``timm.create_model('nfnet_l0', num_classes=0, global_pool='avg')``: 2304-d pooled features,
about 35 M parameters, no batch norm (scaled weight standardisation), so it runs under
``torch.func.functional_call`` in the trajectory students without running statistics. Weights are random
(``pretrained=False``; nothing is downloaded): load a local state dict with the experts' ``encoder_weights``.

timm is not a dependency of mmdistill: without it, creating these nets raises a ConfigError saying so.
"""

from __future__ import annotations

from torch import Tensor, nn

from . import NETS
from ._common import Net, image_shape, strict_kwargs
from ..errors import ConfigError


class TimmEncoder(Net):
    """A timm backbone without classifier as a registered net (``embed`` = pooled features)."""

    def __init__(self, model_name: str, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        try:
            import timm
        except ImportError:
            raise ConfigError(f"net {model_name!r} needs the optional package timm (pip install timm)") from None
        self.features = timm.create_model(model_name, pretrained=False, num_classes=0, global_pool="avg",
                                          in_chans=in_shape[0])
        self._set_head(int(self.features.num_features), num_classes)

    def embed(self, x: Tensor) -> Tensor:
        return self.features(x).flatten(1)


@NETS.register("nfnet_l0")
@strict_kwargs
def nfnet_l0(in_shape: tuple[int, ...], num_classes: int = 0) -> nn.Module:
    return TimmEncoder("nfnet_l0", image_shape("nfnet_l0", in_shape), num_classes)
