"""DM-AV: two-modality Distribution Matching (method ``dm``).

av-distillation.md §2.1 (DM), §2.3 (AVDD's adaptation), §7.4 (spec). Every iteration draws a fresh random
ConvNet per modality from the run loop's per-iteration RNG; for every class c, a real batch of
``batch_real`` pairs and the decoded synthetic pairs get the same Siamese DSA draw, and

    L_c = ‖mean ψa(A(a_r)) − mean ψa(A(a_s))‖² + ‖mean ψv(A(v_r)) − mean ψv(A(v_s))‖²

``step_mode="per_class"`` (AVDD) steps SGD after each class; ``"summed"`` (DM) sums over classes and steps
once. Real embeddings are computed under ``no_grad``. Logs ``loss`` (Σ_c L_c), ``da2``, ``dv2``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

import torch
from torch import Tensor

from .av_common import AVMatchConfig, AVMatchDistiller
from .base import METHODS


@METHODS.register("dm")
class DMAV(AVMatchDistiller):
    name = "dm"
    Config: ClassVar[type] = AVMatchConfig

    def class_loss(self, mu_r: dict[str, Tensor], mu_s: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        la = ((mu_r["audio"] - mu_s["audio"]) ** 2).sum()
        lv = ((mu_r["visual"] - mu_s["visual"]) ** 2).sum()
        return la + lv, {"da2": la.detach(), "dv2": lv.detach()}

    def step(self, it: int) -> dict[str, float]:
        nets = self.random_nets()
        logs: dict[str, float] = defaultdict(float)
        per_class = self.cfg.step_mode == "per_class"
        total: Tensor | None = None
        if not per_class:
            self.opt.zero_grad(set_to_none=True)
        for c in range(self.num_classes):
            aug = self.draw_aug()
            real = self.real_batch(c)
            syn = self.syn_batch(c)
            mu_r, mu_s = self.class_means(nets, real, syn, aug)
            loss, parts = self.class_loss(mu_r, mu_s)
            if per_class:
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.opt.step()
            else:
                total = loss if total is None else total + loss
            logs["loss"] += float(loss.detach())
            for k, v in parts.items():
                logs[k] += float(v)
        if not per_class and total is not None:
            total.backward()
            self.opt.step()
        return dict(logs)
