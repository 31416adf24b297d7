"""DM-AV: two-modality Distribution Matching (method ``dm``).

DM (Zhao & Bilen, WACV 2023) with AVDD's audio-visual adaptation (Kushwaha et al., TMLR 2024). Every
iteration draws a fresh random ConvNet per modality from the run loop's per-iteration RNG; for every
class c, a real batch of ``batch_real`` pairs and the decoded synthetic pairs get the same Siamese DSA draw, and

    L_c = ‖mean ψa(A(a_r)) − mean ψa(A(a_s))‖² + ‖mean ψv(A(v_r)) − mean ψv(A(v_s))‖²

``step_mode="per_class"`` (AVDD) steps SGD after each class; ``"summed"`` (DM) sums over classes and steps
once. Real embeddings are computed under ``no_grad``. Logs ``loss`` (Σ_c L_c), ``da2``, ``dv2``.
Under ``torchrun`` the classes are sharded over the ranks and the synthetic gradients all-reduced (see ``step``).

AVDD's reference loop (Kushwaha et al., TMLR'24, code ``main_DM_AV.py``) differs in two switchable details:
``dsa_draw="per_iteration"`` draws one DSA parameter set per iteration and applies it to every class (and,
with ``dsa.share_across_modalities``, to both modalities); ``momentum_leaves="per_modality"`` keeps AVDD's one
SGD leaf per modality (:meth:`DMAV._step_reference`). With both and DSA off, this loop reproduces the
reference's synthetic tensors to float64 rounding (tests/test_parity_av_kd.py).
"""

from __future__ import annotations

from collections import defaultdict
from typing import ClassVar

import torch
from torch import Tensor

from ..parallel.context import all_gather_object, all_reduce_sum_, context as dist_context
from .av_common import MODALITIES, AVMatchConfig, AVMatchDistiller
from .base import METHODS


@METHODS.register("dm")
class DMAV(AVMatchDistiller):
    name = "dm"
    Config: ClassVar[type] = AVMatchConfig
    reference_loop_options: ClassVar[bool] = True

    def class_loss(self, mu_r: dict[str, Tensor], mu_s: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        la = ((mu_r["audio"] - mu_s["audio"]) ** 2).sum()
        lv = ((mu_r["visual"] - mu_s["visual"]) ** 2).sum()
        return la + lv, {"da2": la.detach(), "dv2": lv.detach()}

    def step(self, it: int) -> dict[str, float]:
        """One iteration; under torchrun the classes are sharded over the ranks.

        Every rank draws the nets, the DSA parameters and the real-batch indices of *every* class (the same
        global-RNG stream as one process), but embeds and back-propagates only its classes c ≡ rank (mod W).
        Class c's loss reaches only class c's synthetic leaves, so summing the leaf gradients over ranks
        (others contribute zeros) gives the one-process gradients exactly; then every rank takes the same
        optimiser step(s): one for ``"summed"``, one per class in class order for ``"per_class"`` (class c+1's
        loss never reads class c's leaves, so computing all losses before stepping changes nothing).
        """
        if self.cfg.momentum_leaves == "per_modality" and self.cfg.step_mode == "per_class":
            return self._step_reference()
        ctx = dist_context()
        nets = self.random_nets()
        self.opt.zero_grad(set_to_none=True)
        per_class_logs: list[dict[str, float] | None] = [None] * self.num_classes
        shared_aug = self.draw_aug() if self.cfg.dsa_draw == "per_iteration" else None
        for c in range(self.num_classes):
            aug = shared_aug if shared_aug is not None else self.draw_aug()
            real = self.real_batch(c)
            if c % ctx.world != ctx.rank:
                continue
            mu_r, mu_s = self.class_means(nets, real, self.syn_batch(c), aug)
            loss, parts = self.class_loss(mu_r, mu_s)
            loss.backward()  # grads land on class c's leaves only
            per_class_logs[c] = {"loss": float(loss.detach()), **{k: float(v) for k, v in parts.items()}}
        if ctx.distributed:
            per_class_logs = self._reduce_shards(per_class_logs)
        if self.cfg.step_mode == "per_class":
            grads = {m: [t.grad for t in self.syn[m]] for m in MODALITIES}
            for c in range(self.num_classes):
                self.opt.zero_grad(set_to_none=True)
                for m in MODALITIES:
                    self.syn[m][c].grad = grads[m][c]
                self.opt.step()
        else:
            self.opt.step()
        logs: dict[str, float] = defaultdict(float)
        for rec in per_class_logs:  # summed in class order, as one process does
            for k, v in (rec or {}).items():
                logs[k] += v
        return dict(logs)

    def _step_reference(self) -> dict[str, float]:
        """AVDD's per-class loop with one SGD leaf per modality (``momentum_leaves="per_modality"``).

        Class by class: loss, backward, one optimiser step in which every other class's leaves get a zero
        gradient, so SGD's momentum moves them as it moves the untouched rows of AVDD's single tensor
        (``buf = μ·buf + 0``; ``x -= lr·buf``), and class c+1's loss sees those moved rows. Sequential by
        construction: under torchrun every rank runs the whole loop (same RNG stream, same result).
        """
        nets = self.random_nets()
        shared_aug = self.draw_aug() if self.cfg.dsa_draw == "per_iteration" else None
        logs: dict[str, float] = defaultdict(float)
        for c in range(self.num_classes):
            aug = shared_aug if shared_aug is not None else self.draw_aug()
            real = self.real_batch(c)
            mu_r, mu_s = self.class_means(nets, real, self.syn_batch(c), aug)
            loss, parts = self.class_loss(mu_r, mu_s)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            for m in MODALITIES:
                for t in self.syn[m]:
                    if t.grad is None:
                        t.grad = torch.zeros_like(t)
            self.opt.step()
            for k, v in {"loss": loss.detach(), **parts}.items():
                logs[k] += float(v)
        return dict(logs)

    def _reduce_shards(self, per_class_logs: list[dict[str, float] | None]) -> list[dict[str, float] | None]:
        """Sum the synthetic leaves' gradients over ranks (zeros for classes this rank skipped) and share the logs."""
        grads = []
        for m in MODALITIES:
            for t in self.syn[m]:
                if t.grad is None:
                    t.grad = torch.zeros_like(t)
                grads.append(t.grad)
        all_reduce_sum_(grads)
        shards = all_gather_object(per_class_logs)
        return [next((s[c] for s in shards if s[c] is not None), None) for c in range(self.num_classes)]
