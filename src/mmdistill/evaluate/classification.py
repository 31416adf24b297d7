"""Audio-visual classification protocol.

Fresh audio net + visual net, each with its own linear head, trained on the given pairs with
CE_a + CE_v (soft labels: cross-entropy against the label distribution). The fused prediction is
the mean of the two softmaxes (AVDD's late-fusion ensemble); audio-only and visual-only accuracy
use one head each. Selection is the LAST step, never the best on test.

Training length is ``max(epochs * ceil(N / batch), min_steps)`` optimiser steps, so a 10-pair set
is not trained for only 10 steps. Everything is recorded in :meth:`describe`.

``protocol: common`` (default) is the recipe above, the same for every method; ``protocol: paper`` trains
AVDD's own evaluation learner instead (:mod:`mmdistill.evaluate.av_paper`, settings under ``paper``), still
selected at the last epoch. ``selection: best-on-test`` (``paper`` only) adds labelled best-on-test metrics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..nets.av_classifier import AVClassifier  # noqa: F401 - the model evaluation trains
from ..precision import autocast, check_precision, widen
from ..train.loop import fit
from ..seed import generator, seed_everything
from ..errors import ConfigError
from ..progress import EpochTicker
from .augment import augment_modality
from .av_paper import AVPaperEval
from .batches import minibatches
from .metrics import accuracy


@dataclass
class ClassificationProtocol:
    arch: str = "convnet"
    audio_arch: str | None = None
    visual_arch: str | None = None
    width: int = 32
    depth: int = 3
    norm: str = "instance"
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    epochs: int = 10
    min_steps: int = 200
    lr_schedule: Literal["cosine", "step", "constant"] = "cosine"
    augment: bool = True
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    eval_batch_size: int = 512
    selection: Literal["last", "best-on-test"] = "last"
    # extra constructor kwargs per evaluation arch, e.g. {"resnet18": {"norm": "instance"}} (cross-arch nets other
    # than ConvNet otherwise use their registered defaults: ResNet-18 and VGG11 with BatchNorm)
    arch_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "common": the recipe above for every method; "paper": AVDD's evaluation learner (settings in ``paper``)
    protocol: Literal["common", "paper"] = "common"
    paper: AVPaperEval = field(default_factory=AVPaperEval)
    precision: str = "fp32"  # forward passes of the common protocol: "fp32" or "bf16" (autocast on CUDA)

    def __post_init__(self) -> None:
        check_precision(self.precision, "eval.precision")
        if self.precision != "fp32" and self.protocol == "paper":
            raise ConfigError("eval.precision 'bf16' is implemented for the common protocol only (eval.protocol 'paper' runs fp32)")
        if self.selection == "best-on-test" and self.protocol != "paper":
            raise ConfigError("eval.selection 'best-on-test' is a control of eval.protocol 'paper' only; "
                              "the common protocol selects the last step")

    def arch_for(self, modality: str) -> str:
        if modality == "audio" and self.audio_arch:
            return self.audio_arch
        if modality == "visual" and self.visual_arch:
            return self.visual_arch
        return self.arch

    def net_kwargs(self, arch: str) -> dict:
        base = {"width": self.width, "depth": self.depth, "norm": self.norm} if arch == "convnet" else {}
        return {**base, **(self.arch_kwargs.get(arch) or {})}

    def describe(self, n_train: int) -> dict:
        if self.protocol == "paper":
            return self._describe_paper(n_train)
        d = asdict(self)
        d.pop("paper")
        if not d["arch_kwargs"]:
            d.pop("arch_kwargs")  # shown in "nets" below; omitted when unused so earlier protocols compare equal
        if d["precision"] == "fp32":
            d.pop("precision")  # recorded only when it is not the default, for the same reason
        bs = min(self.batch_size, n_train)
        d.update({
            "task": "classification",
            "nets": {m: {"arch": self.arch_for(m), **self.net_kwargs(self.arch_for(m))} for m in ("audio", "visual")},
            "heads": "one linear head per modality",
            "trained_modules": "all (fresh nets + heads)",
            "loss": "CE(audio head) + CE(visual head)",
            "fusion": "mean of the two softmaxes",
            "lr_source": "fixed",
            "steps": self.total_steps(n_train),
            "effective_batch_size": bs,
            "split": "train on the given set, test on the dataset's full test split",
        })
        return d

    def _describe_paper(self, n_train: int) -> dict:
        p = self.paper
        return {
            "task": "classification", "protocol": "paper", "reference": "AVDD evaluate_synset_av (sakshamsingh1/AVDD)",
            "paper": asdict(p), "seeds": list(self.seeds), "selection": self.selection,
            "nets": {m: {"arch": "convnet", **p.net_kwargs(m)} for m in ("audio", "visual")},
            "heads": f"one linear head per modality, weights N(0, {p.head_init_std:g}^2)",
            "trained_modules": "all (fresh nets + heads)", "optimizer": "adam",
            "lr": {"heads": p.lr_head, "audio": p.lr_audio, "visual": p.lr_visual}, "weight_decay": p.weight_decay,
            "batch_size": p.batch_size, "epochs": p.epochs,
            "lr_schedule": f"x{p.decay:g} after epochs {p.decay_after_epochs}", "augment": "per-batch DSA, per-sample parameters",
            "loss": "CE(audio head) + CE(visual head)", "fusion": "mean of the two softmaxes", "lr_source": "fixed",
            "steps": p.epochs * math.ceil(n_train / min(p.batch_size, n_train)),
            "split": "train on the given set, test on the dataset's full test split",
            "metrics": "last epoch" + ("; *_best_on_test: best test epoch / best of three heads (a control)"
                                       if self.selection == "best-on-test" else ""),
        }

    def total_steps(self, n_train: int) -> int:
        bs = min(self.batch_size, n_train)
        return max(self.epochs * math.ceil(n_train / bs), self.min_steps)


def _loss(logits: Tensor, y: Tensor) -> Tensor:
    if y.is_floating_point():
        return -(y * F.log_softmax(logits, 1)).sum(1).mean()
    return F.cross_entropy(logits, y)


def train_and_test(
    proto: ClassificationProtocol,
    train: dict[str, Tensor],
    labels: Tensor,
    test: dict[str, Tensor],
    test_labels: Tensor,
    num_classes: int,
    seed: int,
    device: str = "cpu",
) -> dict[str, float]:
    """Train one fresh model on ``train`` (dict of modality tensors) and test it; returns accuracies in %."""
    if proto.protocol == "paper":
        from . import av_paper

        return av_paper.train_and_test(proto.paper, train, labels, test, test_labels, num_classes, seed, device,
                                       best_on_test=proto.selection == "best-on-test",
                                       eval_batch_size=proto.eval_batch_size)
    seed_everything(seed)
    gen = generator(seed)
    shapes = {m: tuple(x.shape[1:]) for m, x in train.items()}
    model = AVClassifier(proto, shapes, num_classes).to(device)
    params = list(model.parameters())
    if proto.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=proto.lr, weight_decay=proto.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=proto.lr, momentum=proto.momentum, weight_decay=proto.weight_decay)
    n = int(labels.shape[0])
    bs = min(proto.batch_size, n)
    total = proto.total_steps(n)
    if proto.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    elif proto.lr_schedule == "step":
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, [total // 2, (3 * total) // 4], 0.1)
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    model.train()
    steps = tqdm(minibatches(n, bs, total, gen), total=total, desc=f"eval seed {seed}", leave=False, disable=None,
                 mininterval=2.0)
    tick = EpochTicker(f"evaluation seed {seed}", total, -(-n // bs))

    def batch_loss(idx: Tensor) -> Tensor:
        batch = {m: x[idx].to(device) for m, x in train.items()}
        if proto.augment:
            batch = {m: augment_modality(m, x, gen) for m, x in batch.items()}
        y = labels[idx].to(device)
        with autocast(proto.precision, device):
            out = model(batch)
        return sum(_loss(widen(out[m]), y) for m in out)

    fit(opt, steps, batch_loss, sched=sched, before=tick.step)
    return test_model(model, test, test_labels, proto.eval_batch_size, device, proto.precision)


@torch.no_grad()
def test_model(model: AVClassifier, test: dict[str, Tensor], labels: Tensor, batch_size: int, device: str,
               precision: str = "fp32") -> dict[str, float]:
    model.eval()
    probs: dict[str, list[Tensor]] = {m: [] for m in test}
    n = int(labels.shape[0])
    for s in range(0, n, batch_size):
        with autocast(precision, device):
            out = model({m: x[s:s + batch_size].to(device) for m, x in test.items()})
        for m, z in out.items():
            probs[m].append(F.softmax(widen(z), 1).cpu())
    p = {m: torch.cat(v) for m, v in probs.items()}
    res = {f"{m}_acc": accuracy(v, labels) for m, v in p.items()}
    if len(p) > 1:
        res["fused_acc"] = accuracy(sum(p.values()) / len(p), labels)
    return res
