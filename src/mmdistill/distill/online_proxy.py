"""Online proxy model: pretrained encoders plus fresh linear projections, trained on real data, reset on schedule.

CovMatch (Lee & Chung, arXiv:2510.18583, Algorithm 1) and RAHA (Jeong et al., arXiv:2606.29464) need no expert
trajectories. Their model is re-initialised at the start of every round (encoders θ_v, θ_l ← pretrained, projections
G_v, G_l ← random) and, after each synthetic update, takes one gradient step of a standard contrastive loss on a
real batch, so the synthetic data are matched against a model that moves along a real training trajectory.

:class:`ProxyModel` is that model: a :class:`~mmdistill.nets.dual_encoder.DualEncoder` trunk (image net + image
projection, MLP text head over the dataset's frozen text vectors; its outputs are the "encoder features" h_v, h_l)
and bias-free linear projections G_v, G_l (embed_dim → ``projection_dim``). The trunk's pretrained state is the
dual encoder trained once on the real training split with InfoNCE (:func:`mmdistill.experts.buffers.pretrain_encoder`,
cached; the CPU-scale stand-in for ImageNet NFNet + BERT) or, with ``encoder_init: file``, a local image-encoder
file and a fresh text head. :class:`OnlineProxy` holds the optimiser and the schedule: ``maybe_reset(it)`` at the
start of every ``reset_every`` outer steps, ``step(images, texts)`` for the real-data update(s).

Choices the papers leave open (marked [unverified] in the fields): the online optimiser, its lrs and the temperature
(defaults: CovMatch's evaluation learner — SGD, momentum 0.9, weight decay 5e-4, lr 0.01 on encoders and 0.1 on
projections, τ 0.07), and the projection init (PyTorch's default Linear init, drawn from the round's seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data.paired import PairedDataset
from ..errors import ConfigError, DataError
from ..nets.dual_encoder import DualEncoder
from ..experts.buffers import ExpertConfig, pretrain_encoder
from ..experts.model import build_model
from ..seed import derive_seed
from ..losses.contrastive import contrastive_logits, info_nce, log_scale_of


@dataclass
class ProxyConfig:
    """Online proxy model and its schedule."""

    reset_every: int = 50  # outer steps per round; encoders -> pretrained, projections -> random (papers: 50)
    inner_steps: int = 1  # real-data steps after each synthetic update (papers: 1)
    batch_size: int = 128  # real pairs per online step [unverified; CovMatch's evaluation batch]
    projection_dim: int = 0  # r of G_v, G_l; 0 = the trunk's embed_dim (CovMatch: r = feature dim, 2304)
    lr_encoder: float = 0.01  # [unverified] online SGD lr of the trunk (CovMatch's evaluation lr for the encoders)
    lr_projection: float = 0.1  # [unverified] online SGD lr of G_v, G_l (CovMatch's evaluation lr for projections)
    momentum: float = 0.9  # [unverified]
    weight_decay: float = 5e-4  # [unverified]
    temperature: float = 0.07  # [unverified] fixed τ of the online contrastive loss (logits exp(log 1/τ)·cos)
    # how the trunk is pretrained: the trajectory family's encoder pretraining (net, encoder_* fields, seed, encoder_init;
    # the rest of ExpertConfig is unused); same cache as the expert buffers' image encoder
    pretrain: ExpertConfig = field(default_factory=ExpertConfig)

    def check(self) -> None:
        if self.reset_every < 1 or self.inner_steps < 0 or self.batch_size < 2:
            raise ConfigError("proxy: need reset_every >= 1, inner_steps >= 0 and batch_size >= 2")
        if self.projection_dim < 0 or min(self.lr_encoder, self.lr_projection) < 0 or self.temperature <= 0:
            raise ConfigError("proxy: projection_dim, lr_encoder and lr_projection must be >= 0, temperature > 0")


class ProxyModel(nn.Module):
    """Trunk (image net + image projection, text head) and linear projections G_v, G_l."""

    def __init__(self, trunk: DualEncoder, embed_dim: int, projection_dim: int) -> None:
        super().__init__()
        self.trunk = trunk
        r = projection_dim or embed_dim
        self.g_v = nn.Linear(embed_dim, r, bias=False)
        self.g_l = nn.Linear(embed_dim, r, bias=False)

    def features(self, images: Tensor, texts: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder features (h_v, h_l): the trunk's unnormalised image and text embeddings."""
        t = self.trunk
        return t.image_head(t.image_encoder.embed(images)), t.text_head(texts)

    def project(self, h_v: Tensor, h_l: Tensor) -> tuple[Tensor, Tensor]:
        return self.g_v(h_v), self.g_l(h_l)

    def encoder_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.trunk.named_parameters() if n != "log_scale"]

    def projection_parameters(self) -> list[nn.Parameter]:
        return [*self.g_v.parameters(), *self.g_l.parameters()]


def pretrained_trunk_state(ds: PairedDataset, cfg: ExpertConfig) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The trunk's pretrained state dict (possibly partial) and where it came from."""
    from safetensors.torch import load_file

    if cfg.encoder_init == "pretrained":
        path = pretrain_encoder(ds, cfg, progress=False, full=True)
        return load_file(str(path)), {"trunk": "dual encoder pretrained on the real train split", "path": str(path)}
    if cfg.encoder_init == "file":
        if not cfg.encoder_weights or not Path(cfg.encoder_weights).expanduser().is_file():
            raise DataError(f"proxy.pretrain.encoder_weights: image encoder weights file {cfg.encoder_weights!r} not found")
        state = {f"image_encoder.{k}": v for k, v in load_file(str(Path(cfg.encoder_weights).expanduser())).items()}
        return state, {"trunk": "image encoder from a file, fresh heads", "path": str(cfg.encoder_weights)}
    return {}, {"trunk": "random"}


class OnlineProxy:
    """The proxy model, its optimiser and its reset schedule (module docstring)."""

    def __init__(self, ds: PairedDataset, cfg: ProxyConfig, seed: int) -> None:
        cfg.check()
        self.cfg = cfg
        self.seed = seed
        images, texts = ds.tensors["image"], ds.tensors["text"]
        trunk = build_model(cfg.pretrain.net, tuple(images.shape[1:]), int(texts.shape[1]))
        self.model = ProxyModel(trunk, cfg.pretrain.net.embed_dim, cfg.projection_dim)
        self.pretrained, self.source = pretrained_trunk_state(ds, cfg.pretrain)
        missing = [k for k in self.pretrained if k not in trunk.state_dict()]
        if missing:
            raise DataError(f"pretrained trunk state has keys the model lacks: {missing[:3]} (net settings changed?)")
        self._init_trunk = {k: v.detach().clone() for k, v in trunk.state_dict().items()}  # for keys not pretrained
        self.log_scale = log_scale_of(cfg.temperature)
        self.round = -1
        self.opt: torch.optim.Optimizer | None = None

    @property
    def projection_dim(self) -> int:
        return self.model.g_v.out_features

    def reset(self, round_idx: int) -> None:
        """Encoders ← pretrained, projections ← random (from the round's seed), fresh optimiser state."""
        state = {**self._init_trunk, **self.pretrained}
        self.model.trunk.load_state_dict(state)
        gen = torch.Generator().manual_seed(derive_seed(self.seed, "proxy-round", round_idx))
        with torch.no_grad():
            for g in (self.model.g_v, self.model.g_l):
                bound = 1.0 / math.sqrt(g.in_features)  # nn.Linear's default (kaiming-uniform, a = √5)
                g.weight.uniform_(-bound, bound, generator=gen)
        c = self.cfg
        self.opt = torch.optim.SGD([{"params": self.model.encoder_parameters(), "lr": c.lr_encoder},
                                    {"params": self.model.projection_parameters(), "lr": c.lr_projection}],
                                   lr=c.lr_projection, momentum=c.momentum, weight_decay=c.weight_decay)
        self.round = round_idx

    def maybe_reset(self, it: int) -> bool:
        """Reset when iteration ``it`` starts a round (or the proxy was never set up); True if it reset."""
        r = it // self.cfg.reset_every
        if r != self.round or self.opt is None:
            self.reset(r)
            return True
        return False

    def contrastive_loss(self, images: Tensor, texts: Tensor) -> Tensor:
        zv, zl = self.model.project(*self.model.features(images, texts))
        return info_nce(contrastive_logits(zv, zl, self.log_scale))

    def step(self, images: Tensor, texts: Tensor) -> float:
        """One optimiser step of symmetric InfoNCE on a real batch; returns the loss."""
        assert self.opt is not None, "call maybe_reset/reset first"
        loss = self.contrastive_loss(images, texts)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        return {"model": {k: v.detach().clone() for k, v in self.model.state_dict().items()}, "round": self.round,
                "opt": self.opt.state_dict() if self.opt is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reset(int(state["round"]))
        self.model.load_state_dict(state["model"])
        if state.get("opt") is not None and self.opt is not None:
            self.opt.load_state_dict(state["opt"])
