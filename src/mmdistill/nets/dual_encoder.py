"""Contrastive dual encoders of the retrieval protocols (CLIP-style, arXiv:2103.00020): an encoder and a linear
projection per side, L2-normalised embeddings, logits = exp(log_scale) · cosine (the scale clamped at 100).

* :class:`DualEncoder` - image–text: an image net + projection, and an MLP over frozen text vectors;
* :class:`AVDualEncoder` - audio–visual: one net + projection per modality.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import create_net

AV_MODALITIES = ("audio", "visual")


class ImageTextSpec(Protocol):
    """What :class:`DualEncoder` reads from a retrieval protocol."""

    image_arch: str
    embed_dim: int
    text_hidden: int
    temperature: float
    learn_temperature: bool

    def net_kwargs(self) -> dict[str, Any]: ...


class AVSpec(Protocol):
    """What :class:`AVDualEncoder` reads from the audio–visual retrieval protocol."""

    arch: str
    embed_dim: int
    temperature: float
    learn_temperature: bool

    def net_kwargs(self) -> dict[str, Any]: ...


class DualEncoder(nn.Module):
    def __init__(self, proto: ImageTextSpec, image_shape: tuple[int, ...], text_dim: int) -> None:
        super().__init__()
        self.image_encoder = create_net(proto.image_arch, image_shape, num_classes=0, **proto.net_kwargs())
        self.image_head = nn.Linear(self.image_encoder.feat_dim, proto.embed_dim)
        self.text_head = nn.Sequential(nn.Linear(text_dim, proto.text_hidden), nn.ReLU(), nn.Linear(proto.text_hidden, proto.embed_dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / proto.temperature)), requires_grad=proto.learn_temperature)

    def encode_image(self, x: Tensor) -> Tensor:
        return F.normalize(self.image_head(self.image_encoder.embed(x)), dim=-1)

    def encode_text(self, t: Tensor) -> Tensor:
        return F.normalize(self.text_head(t), dim=-1)

    def logits(self, x: Tensor, t: Tensor) -> Tensor:
        # scale = exp(log_scale) (MTT-VL's reference multiplies by log_scale itself; not reproduced here)
        return self.log_scale.exp().clamp(max=100.0) * self.encode_image(x) @ self.encode_text(t).T


class AVDualEncoder(nn.Module):
    def __init__(self, proto: AVSpec, shapes: dict[str, tuple[int, ...]]) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        for m in AV_MODALITIES:
            enc = create_net(proto.arch, shapes[m], num_classes=0, **proto.net_kwargs())
            self.encoders[m] = enc
            self.heads[m] = nn.Linear(enc.feat_dim, proto.embed_dim)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / proto.temperature)), requires_grad=proto.learn_temperature)

    def encode(self, m: str, x: Tensor) -> Tensor:
        return F.normalize(self.heads[m](self.encoders[m].embed(x)), dim=-1)

    def logits(self, audio: Tensor, visual: Tensor) -> Tensor:
        return self.log_scale.exp().clamp(max=100.0) * self.encode("audio", audio) @ self.encode("visual", visual).T
