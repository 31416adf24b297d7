"""Image-text retrieval protocol (the common protocol every image-text set is evaluated with).

An image encoder (a registered net + linear projection) and a text head (MLP over frozen text
vectors) are trained on the given pairs with symmetric InfoNCE (learnable temperature), or against
the set's soft similarity matrix when it carries one (``target_fn``). Trained modules (``full`` or
``heads``) and the lr source (``fixed`` or ``learned``) are explicit fields. Selection = last step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Literal

import torch
from torch import Tensor
from tqdm import tqdm

from ..losses.contrastive import info_nce
from ..errors import ConfigError
from ..nets.dual_encoder import DualEncoder
from ..precision import autocast, check_precision, widen
from ..train.loop import fit
from ..seed import generator, seed_everything
from ..progress import EpochTicker
from .augment import augment_modality
from .batches import minibatches
from .metrics import retrieval_recalls

# target_fn(idx) -> (B, B) soft similarity target for the batch rows idx, or None for identity.
TargetFn = Callable[[Tensor], Tensor]


@dataclass
class RetrievalProtocol:
    image_arch: str = "convnet"
    width: int = 32
    depth: int = 3
    norm: str = "instance"
    embed_dim: int = 256
    text_hidden: int = 512
    trained_modules: Literal["full", "heads"] = "full"
    image_encoder_weights: str | None = None
    lr_source: Literal["fixed", "learned"] = "fixed"
    optimizer: Literal["adamw", "sgd"] = "adamw"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    temperature: float = 0.07
    learn_temperature: bool = True
    batch_size: int = 64
    epochs: int = 5
    min_steps: int = 200
    augment: bool = True
    soft_loss: str = "wbce"
    similarity: Literal["set", "ignore"] = "set"  # "set": train against the set's learned S (LoRS); "ignore": InfoNCE
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    selection: Literal["last", "best-on-test"] = "last"  # "best-on-test": labelled control of protocol "paper" only
    # "common": the recipe above for every set; "paper": the trajectory-matching papers' own learner;
    # "covmatch": CovMatch's learner (both towers train, SGD, encoder lr 0.01 / heads 0.1); see evaluate/paper_learner.py
    protocol: Literal["common", "paper", "covmatch"] = "common"
    encoder_lr: float | None = None  # lr of the image encoder when it trains (None = lr); protocol "covmatch" sets 0.01
    paper_lr_decay: bool = True  # protocol "paper": lr x0.1 from epoch epochs//2+1 (LoRS, RepBlend, MDM); False: constant (MTT-VL)
    precision: str = "fp32"  # forward passes of the common protocol: "fp32" or "bf16" (autocast on CUDA)

    def __post_init__(self) -> None:
        check_precision(self.precision, "eval.precision")
        if self.precision != "fp32" and self.protocol != "common":
            raise ConfigError("eval.precision 'bf16' is implemented for the common protocol only (eval.protocol 'paper' runs fp32)")

    def net_kwargs(self) -> dict:
        if self.image_arch == "convnet":
            return {"width": self.width, "depth": self.depth, "norm": self.norm}
        return {}

    def total_steps(self, n_train: int) -> int:
        bs = min(self.batch_size, n_train)
        return max(self.epochs * math.ceil(n_train / bs), self.min_steps)

    def describe(self, n_train: int) -> dict:
        if self.protocol != "common":
            from .paper_learner import describe_paper

            return describe_paper(self, n_train)
        d = asdict(self)
        if d["precision"] == "fp32":
            d.pop("precision")  # recorded only when it is not the default, so earlier protocols compare equal
        d.update({
            "task": "retrieval",
            "nets": {"image": {"arch": self.image_arch, **self.net_kwargs(), "projection": f"linear -> {self.embed_dim}"},
                     "text": f"MLP {{d}} -> {self.text_hidden} -> {self.embed_dim} over frozen text vectors"},
            "loss": "symmetric InfoNCE, or soft targets from the set's similarity matrix when present",
            "steps": self.total_steps(n_train),
            "effective_batch_size": min(self.batch_size, n_train),
            "split": "train on the given pairs, test on the dataset's full test split (all captions)",
            "metrics": "IR@K: caption -> its image; TR@K: image -> any of its captions; r_mean = mean of six",
        })
        return d


def _build_optimizer(proto: RetrievalProtocol, model: DualEncoder, lrs: dict[str, float] | None):
    if proto.trained_modules == "heads":
        if proto.image_encoder_weights is None:
            raise ConfigError("retrieval protocol: trained_modules='heads' needs image_encoder_weights (a frozen encoder)")
        for p in model.image_encoder.parameters():
            p.requires_grad_(False)
    enc_params = [p for p in model.image_encoder.parameters() if p.requires_grad]
    img_params = list(model.image_head.parameters())
    txt_params = list(model.text_head.parameters())
    other = [model.log_scale] if model.log_scale.requires_grad else []
    lr_img = lr_txt = proto.lr
    if proto.lr_source == "learned":
        if not lrs:
            raise ConfigError("retrieval protocol: lr_source='learned' but the synthetic set carries no learned step sizes")
        lr_img, lr_txt = lrs["image"], lrs["text"]
    if proto.encoder_lr is None:
        groups = [{"params": enc_params + img_params, "lr": lr_img}, {"params": txt_params, "lr": lr_txt}]
    else:
        groups = [{"params": img_params, "lr": lr_img}, {"params": txt_params, "lr": lr_txt}]
        if enc_params:
            groups.append({"params": enc_params, "lr": float(proto.encoder_lr)})
    if other:
        groups.append({"params": other, "lr": proto.lr})
    if proto.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=proto.lr, weight_decay=proto.weight_decay)
    return torch.optim.SGD(groups, lr=proto.lr, momentum=proto.momentum, weight_decay=proto.weight_decay)


def train_and_test(
    proto: RetrievalProtocol,
    images: Tensor,
    texts: Tensor,
    test_images: Tensor,
    test_texts: Tensor,
    test_text_to_image: Tensor,
    seed: int,
    *,
    target_fn: TargetFn | None = None,
    soft_loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    learned_lrs: dict[str, float] | None = None,
    device: str = "cpu",
) -> dict[str, float]:
    """Train a fresh dual encoder on aligned rows (images[i], texts[i]) and test retrieval."""
    if proto.protocol != "common" or proto.selection != "last":
        from . import paper_learner

        return paper_learner.train_and_test(proto, images, texts, test_images, test_texts, test_text_to_image, seed,
                                            target_fn=target_fn, soft_loss_fn=soft_loss_fn, learned_lrs=learned_lrs,
                                            device=device)
    seed_everything(seed)
    gen = generator(seed)
    model = DualEncoder(proto, tuple(images.shape[1:]), int(texts.shape[1])).to(device)
    if proto.image_encoder_weights:
        from safetensors.torch import load_file

        model.image_encoder.load_state_dict(load_file(proto.image_encoder_weights))
    opt = _build_optimizer(proto, model, learned_lrs)
    n = int(images.shape[0])

    def batch_loss(idx: Tensor) -> Tensor:
        x = images[idx].to(device)
        if proto.augment:
            x = augment_modality("image", x, gen)
        with autocast(proto.precision, device):
            logits = model.logits(x, texts[idx].to(device))
        logits = widen(logits)
        if target_fn is not None and soft_loss_fn is not None:
            return soft_loss_fn(logits, target_fn(idx).to(device))
        return info_nce(logits)

    model.train()
    fit_contrastive(opt, batch_loss, n, min(proto.batch_size, n), proto.total_steps(n), gen, seed)
    return test_model(model, test_images, test_texts, test_text_to_image, device, precision=proto.precision)


def fit_contrastive(opt: torch.optim.Optimizer, batch_loss: Callable[[Tensor], Tensor], n: int, batch_size: int,
                    total: int, gen: torch.Generator, seed: int) -> None:
    """The retrieval protocols' training loop: ``total`` AdamW/SGD steps on ``batch_loss(idx)`` over seeded
    minibatches of ``n`` rows (:func:`minibatches`), cosine-annealed learning rate, selection = last step."""
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    steps = tqdm(minibatches(n, batch_size, total, gen), total=total, desc=f"eval seed {seed}", leave=False,
                 disable=None, mininterval=2.0)
    tick = EpochTicker(f"evaluation seed {seed}", total, -(-n // batch_size))
    fit(opt, steps, batch_loss, sched=sched, before=tick.step)


@torch.no_grad()
def test_model(model: DualEncoder, images: Tensor, texts: Tensor, t2i: Tensor, device: str, batch: int = 512,
               precision: str = "fp32") -> dict[str, float]:
    model.eval()
    with autocast(precision, device):
        zi = torch.cat([widen(model.encode_image(images[s:s + batch].to(device))).cpu() for s in range(0, images.shape[0], batch)])
        zt = torch.cat([widen(model.encode_text(texts[s:s + batch].to(device))).cpu() for s in range(0, texts.shape[0], batch)])
    return retrieval_recalls(zi @ zt.T, t2i)
