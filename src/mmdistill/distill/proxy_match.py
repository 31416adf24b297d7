"""Trajectory-free image-text distillation against an online proxy: the loop CovMatch and RAHA share.

CovMatch (Lee & Chung, arXiv:2510.18583, Algorithm 1) and RAHA (Jeong et al., arXiv:2606.29464, which reuses
CovMatch's encoders and model schedule) differ only in the matching loss. One outer step ``it``:

    if it starts a round: proxy encoders ← pretrained, projections ← random         (:class:`.online_proxy.OnlineProxy`)
    B_T ← ``batch_real`` real pairs;  B_S ← min(``batch_syn``, N) synthetic pairs
    L ← loss_terms(B_T, B_S)          real features under no_grad, synthetic ones through the proxy
    S ← SGD(S, ∇_S L)                 pixels and text vectors are the only optimised leaves
    ``proxy.inner_steps`` InfoNCE steps of the proxy on fresh real batches

Synthetic text: one vector per pair in the dataset's frozen text space (MiniLM, 384-d), initialised from the
caption, as the trajectory-matching methods store it; the proxy's trainable text tower is the MLP head over it.
Initialisation: N random real pairs (CovMatch). Subclasses set ``name``, ``Config`` and :meth:`loss_terms`.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import ConfigError
from ..seed import derive_seed, generator
from ..synth import SyntheticSet
from .base import Distiller, restore_optimizer
from .online_proxy import OnlineProxy, ProxyConfig
from .vl_common import CAPTIONS_NOTE, nearest_captions


@dataclass
class ProxyMatchConfig:
    """Fields shared by CovMatch and RAHA (defaults: the papers' values where published)."""

    iterations: int = 10000  # outer steps (CovMatch: 10,000 at 100/200 pairs, 20,000 at 500; RAHA: 200 x 50)
    batch_real: int = 128  # |B_T| (CovMatch 128; RAHA 64)
    batch_syn: int = 256  # |B_S| = min(batch_syn, N) (CovMatch: all of S up to 200 pairs, 256 at 500; RAHA 64)
    lr_img: float = 1.0  # synthetic pixel lr (papers: 1.0 at 224 px; tuned on val at CPU scale)
    lr_txt: float = 1.0  # synthetic text lr (papers: 1.0, shared with pixels)
    momentum: float = 0.5  # SGD momentum of the synthetic data (CovMatch 0.5; RAHA [unverified], CovMatch's)
    grad_clip: float = 0.0  # [unverified] clip the joint gradient norm of pixels and text (0 = off; no source mentions it)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)


class ProxyMatchDistiller(Distiller):
    """Shared init/step/export; subclasses implement :meth:`loss_terms`."""

    Config: ClassVar[type] = ProxyMatchConfig
    budget_units: ClassVar[tuple[str, ...]] = ("pairs",)

    def _check(self) -> None:
        c = self.cfg
        if self.dataset.task != "retrieval":
            raise ConfigError(f"method {self.name!r} needs an image-text retrieval dataset; {self.dataset.name!r} is {self.dataset.task}")
        if c.batch_real < 2 or c.batch_syn < 2:
            raise ConfigError(f"{self.name}: batch_real and batch_syn must be >= 2 (covariances need two pairs)")
        if c.iterations < 0 or min(c.lr_img, c.lr_txt) < 0 or not 0 <= c.momentum < 1 or c.grad_clip < 0:
            raise ConfigError(f"{self.name}: need iterations >= 0, lr_img/lr_txt >= 0, 0 <= momentum < 1, grad_clip >= 0")
        if self.budget.value < 2:
            raise ConfigError(f"{self.name}: needs at least 2 synthetic pairs, got {self.budget.value}")

    def init(self) -> None:
        self._check()
        c = self.cfg
        ds = self.dataset
        self.proxy = OnlineProxy(ds, c.proxy, derive_seed(self.seed, "proxy"))
        n = self.budget.value
        self.n = n
        gen = generator(derive_seed(self.seed, "proxy-match-init"))  # CovMatch and RAHA start from the same subset
        idx = torch.randperm(len(ds), generator=gen)[:n]
        self.init_indices = idx
        self.images = ds.tensors["image"][ds.text_to_image[idx]].clone().float().requires_grad_(True)
        self.texts = ds.tensors["text"][idx].clone().float().requires_grad_(True)
        self.opt = torch.optim.SGD([{"params": [self.images], "lr": c.lr_img}, {"params": [self.texts], "lr": c.lr_txt}],
                                   lr=c.lr_img, momentum=c.momentum)

    # ------------------------------------------------------------------------------------------- batches
    def real_batch(self, size: int) -> tuple[Tensor, Tensor]:
        ds = self.dataset
        idx = torch.randperm(len(ds))[:min(size, len(ds))]
        return ds.tensors["image"][ds.text_to_image[idx]], ds.tensors["text"][idx]

    def syn_batch(self) -> tuple[Tensor, Tensor]:
        idx = torch.randperm(self.n)[:min(self.cfg.batch_syn, self.n)]
        return self.images[idx], self.texts[idx]

    @abstractmethod
    def loss_terms(self, real: tuple[Tensor, Tensor], syn: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """The matching loss (key ``loss``) and its parts, differentiable w.r.t. the synthetic batch."""

    # ---------------------------------------------------------------------------------------------- step
    def step(self, it: int) -> dict[str, float]:
        c = self.cfg
        self.proxy.maybe_reset(it)
        terms = self.loss_terms(self.real_batch(c.batch_real), self.syn_batch())
        gi, gt = torch.autograd.grad(terms["loss"], [self.images, self.texts], allow_unused=True)
        self.images.grad = torch.zeros_like(self.images) if gi is None else gi
        self.texts.grad = torch.zeros_like(self.texts) if gt is None else gt
        norms = (float(self.images.grad.norm()), float(self.texts.grad.norm()))
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([self.images, self.texts], c.grad_clip)
        self.opt.step()
        proxy_loss = float("nan")
        for _ in range(c.proxy.inner_steps):
            proxy_loss = self.proxy.step(*self.real_batch(c.proxy.batch_size))
        logs = {k: float(v.detach()) for k, v in terms.items()}
        logs.update({"grad_norm_image": norms[0], "grad_norm_text": norms[1]})
        if c.proxy.inner_steps:
            logs["proxy_loss"] = proxy_loss
        return logs

    # -------------------------------------------------------------------------------------- export/state
    def export(self) -> SyntheticSet:
        t = self.texts.detach().clone()
        meta = self.base_meta()
        meta["captions"] = nearest_captions(self.dataset, t)
        meta["captions_note"] = CAPTIONS_NOTE
        meta["init_indices"] = self.init_indices.tolist()
        meta["proxy"] = {**self.proxy.source, "projection_dim": self.proxy.projection_dim,
                         "reset_every": self.cfg.proxy.reset_every, "inner_steps": self.cfg.proxy.inner_steps}
        meta["eval_hint"] = {"trained_modules": "full", "lr_source": "fixed", "protocol": "covmatch",
                             "net": self.cfg.proxy.pretrain.net.protocol_fields()}
        return SyntheticSet(tensors={"image": self.images.detach().clone(), "text": t}, extras={}, meta=meta)

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images.detach().clone(), "texts": self.texts.detach().clone(), "opt": self.opt.state_dict(),
                "init_indices": self.init_indices, "proxy": self.proxy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"])
            self.texts.copy_(state["texts"])
        self.init_indices = state["init_indices"]
        restore_optimizer(self.opt, state["opt"])
        self.proxy.load_state_dict(state["proxy"])
