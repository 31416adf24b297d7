"""AVDD's own evaluation learner: ``eval.protocol: paper`` for audio-visual classification.

Kushwaha et al., "Audio-Visual Dataset Distillation", TMLR 2024; code sakshamsingh1/AVDD,
``utils/train_utils_DM.py::evaluate_synset_av`` with ``nets/__init__.py::ModelBuilder`` and the defaults of
``main_DM_AV.py``. The sets are distilled for this learner, so ``paper`` trains exactly it:

* nets: audio ConvNet width 128, depth 3, pad 3 on a one-channel input, adaptive 7×7 last pooling; visual
  ConvNet width 128, depth 5; instance norm; one linear head per modality with weights ~ N(0, 1e-4²)
  (``weights_init``: std 1e-4) and PyTorch's default biases; the encoders keep PyTorch's default init;
* Adam (betas 0.9/0.999, weight decay 1e-4) with three learning-rate groups: heads 1e-3, audio 1e-3,
  visual 1e-4;
* 30 epochs over shuffled minibatches of 32 (the last, partial batch kept, as a ``DataLoader``); every
  learning rate × 0.1 after epochs 10 and 20 (0-based, AVDD's ``lr_steps``);
* every training batch of each modality: DSA with one op per batch and per-sample parameters, not Siamese,
  the visual op list on both modalities (:func:`mmdistill.dsa.augment_per_sample`);
* loss CE(audio head) + CE(visual head); test: each head's softmax and their mean (fused).

Model selection is the last epoch, as AVDD's own routine (it tests once, after training).
``selection: best-on-test`` is a labelled control: it also tests after every epoch and adds
``<metric>_best_on_test`` (the best epoch) and ``best_head_acc_best_on_test`` (the best of the three heads
over epochs), showing how much picking on the test split inflates. The unsuffixed metrics stay the last epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..dsa import DSAConfig, augment_per_sample
from ..nets import create_net
from ..seed import generator, seed_everything
from ..train import loop as train_loop

MODALITIES = ("audio", "visual")


@dataclass
class AVPaperEval:
    """AVDD's evaluation settings (defaults = the released code)."""

    width: int = 128
    norm: str = "instance"
    audio_depth: int = 3
    visual_depth: int = 5
    audio_final_pool: list[int] | None = field(default_factory=lambda: [7, 7])
    visual_final_pool: list[int] | None = None
    audio_first_pad: int | str = "dc"
    visual_first_pad: int | str = "auto"
    lr_head: float = 1e-3
    lr_audio: float = 1e-3
    lr_visual: float = 1e-4
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    batch_size: int = 32
    epochs: int = 30
    decay_after_epochs: list[int] = field(default_factory=lambda: [10, 20])
    decay: float = 0.1
    head_init_std: float = 1e-4
    dsa: DSAConfig = field(default_factory=lambda: DSAConfig(audio_ops="avdd", affine_align_corners=False))

    def net_kwargs(self, modality: str) -> dict[str, Any]:
        a = modality == "audio"
        fp = self.audio_final_pool if a else self.visual_final_pool
        return {"width": self.width, "depth": self.audio_depth if a else self.visual_depth, "norm": self.norm,
                "final_pool": tuple(fp) if fp else None, "first_pad": self.audio_first_pad if a else self.visual_first_pad}


class PaperAVClassifier(nn.Module):
    """One ConvNet and one linear head per modality (AVDD's ``Classifier_Ensemble``)."""

    def __init__(self, cfg: AVPaperEval, shapes: dict[str, tuple[int, ...]], num_classes: int) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict({m: create_net("convnet", s, 0, **cfg.net_kwargs(m)) for m, s in shapes.items()})
        self.heads = nn.ModuleDict({m: nn.Linear(self.encoders[m].feat_dim, num_classes) for m in shapes})
        with torch.no_grad():
            for h in self.heads.values():
                h.weight.normal_(0.0, cfg.head_init_std)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {m: self.heads[m](self.encoders[m].embed(x)) for m, x in batch.items()}


def _ce(logits: Tensor, y: Tensor) -> Tensor:
    if y.is_floating_point():
        return -(y * F.log_softmax(logits, 1)).sum(1).mean()
    return F.cross_entropy(logits, y)


def fit(model: PaperAVClassifier, cfg: AVPaperEval, train: dict[str, Tensor], labels: Tensor, gen: torch.Generator,
        device: str = "cpu", after_epoch: Callable[[int], None] | None = None) -> None:
    """AVDD's training loop on ``model`` (in place): three Adam groups, per-batch DSA, step decay by epoch."""
    lrs = {"audio": cfg.lr_audio, "visual": cfg.lr_visual}
    groups = [{"params": list(model.heads.parameters()), "lr": cfg.lr_head}]
    groups += [{"params": list(model.encoders[m].parameters()), "lr": lrs.get(m, cfg.lr_audio)} for m in model.encoders]
    opt = torch.optim.Adam(groups, betas=(cfg.betas[0], cfg.betas[1]), weight_decay=cfg.weight_decay)
    ops = {m: cfg.dsa.ops_for(m) for m in train}
    n = int(labels.shape[0])

    def batch_loss(idx: Tensor) -> Tensor:
        batch = {m: augment_per_sample(x[idx].to(device), ops[m], gen, cfg.dsa) for m, x in train.items()}
        y = labels[idx].to(device)
        out = model(batch)
        return sum(_ce(out[m], y) for m in out)  # type: ignore[return-value]

    for epoch in range(cfg.epochs):
        model.train()
        train_loop.fit(opt, train_loop.epoch_batches(n, cfg.batch_size, 1, gen), batch_loss)
        if epoch in cfg.decay_after_epochs:
            for g in opt.param_groups:
                g["lr"] *= cfg.decay
        if after_epoch is not None:
            after_epoch(epoch)


def train_and_test(cfg: AVPaperEval, train: dict[str, Tensor], labels: Tensor, test: dict[str, Tensor],
                   test_labels: Tensor, num_classes: int, seed: int, device: str = "cpu", *,
                   best_on_test: bool = False, eval_batch_size: int = 512) -> dict[str, float]:
    """Train AVDD's learner on ``train`` and test it at the last epoch (accuracies in %)."""
    from .classification import test_model

    seed_everything(seed)
    gen = generator(seed)
    shapes = {m: tuple(x.shape[1:]) for m, x in train.items()}
    model = PaperAVClassifier(cfg, shapes, num_classes).to(device)
    best: dict[str, float] = {}

    def probe(epoch: int) -> None:
        if best_on_test and epoch < cfg.epochs - 1:
            _update_best(best, test_model(model, test, test_labels, eval_batch_size, device))

    fit(model, cfg, train, labels, gen, device, probe)
    res = test_model(model, test, test_labels, eval_batch_size, device)
    if best_on_test:
        _update_best(best, res)
        res.update({f"{k}_best_on_test": v for k, v in best.items()})
    return res


def _update_best(best: dict[str, float], res: dict[str, float]) -> None:
    for k, v in res.items():
        best[k] = max(best.get(k, float("-inf")), v)
    best["best_head_acc"] = max(best.get("best_head_acc", float("-inf")), *res.values())
