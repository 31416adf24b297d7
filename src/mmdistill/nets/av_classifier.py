"""The audio-visual evaluation model: one encoder and one linear head per modality (late fusion is applied by the
caller on the per-modality logits)."""

from __future__ import annotations

from typing import Any, Protocol

from torch import Tensor, nn

from . import create_net


class ArchSpec(Protocol):
    """What the model needs from an evaluation protocol: the architecture of each modality and its kwargs."""

    def arch_for(self, modality: str) -> str: ...

    def net_kwargs(self, arch: str) -> dict[str, Any]: ...


class AVClassifier(nn.Module):
    def __init__(self, proto: ArchSpec, shapes: dict[str, tuple[int, ...]], num_classes: int) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        for m, shape in shapes.items():
            arch = proto.arch_for(m)
            enc = create_net(arch, shape, num_classes=0, **proto.net_kwargs(arch))
            self.encoders[m] = enc
            self.heads[m] = nn.Linear(enc.feat_dim, num_classes)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {m: self.heads[m](self.encoders[m].embed(x)) for m, x in batch.items()}
