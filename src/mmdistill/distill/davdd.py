"""DAVDD: Decoupled Audio-Visual Dataset Distillation (arXiv 2511.17890), method ``davdd``.

The paper replaces DM/AVDD's random networks by a bank of M frozen encoder pairs pretrained on the real data
(M = 40) and, per pair, a decoupler (a 2-layer MLP per modality) that maps the encoder output into a **common**
space; the encoder's **raw output is the private representation**. Private parts are matched within each
modality only; common parts are matched per modality and across modalities ("Common Intermodal Matching"), at the
sample level (a contrastive loss between synthetic audio and visual common features, the paper's Eq. 24,
L_A→V, with its symmetric L_V→A) and at the distribution level (alignment to an EMA prototype bank). Only the
synthetic set is updated; encoders and decouplers stay frozen. Storage uses the factor-l parameterisation
(l = 2 in the paper; :mod:`.factor`).

Per iteration: draw one bank pair k (:mod:`mmdistill.experts.bank`); for every class c the real batch and the
decoded synthetic pairs get one Siamese DSA draw; with f_m = E_m^k(A(x_m)) and z_m = normalize(C_m^k(f_m))::

    L_pri   = Σ_c Σ_m ‖mean f_m^r − mean f_m^s‖²                               private, raw encoder output
    L_com   = Σ_c Σ_m ‖mean z_m^r − mean z_m^s‖²                               common, per modality
    L_inter = Σ_c (cos(mean z_a^s, mean z_v^s) − cos(mean z_a^r, mean z_v^r))²   common, intermodal
    L_samp  = contrastive(z_a^s, z_v^s)  over all classes' synthetic pairs     sample level (Eq. 24, symmetric)
    π[k,c,m] ← β π[k,c,m] + (1 − β) mean z_m^r   (first visit: set)            EMA prototype bank
    L_align = Σ_c Σ_m ‖mean z_m^s − π[k,c,m]‖²                                 distribution level
    L = λ_pri L_pri + λ_com L_com + λ_inter L_inter + λ_samp L_samp + λ_align L_align;  one SGD step.

Every term is zero when the synthetic set equals the real batch (L_samp aside, which has no real counterpart, and
L_align, whose prototypes average past batches). The available text gives neither the distances nor the weights:
the forms above are our reading and every weight is a config field [unverified]. In particular the intermodal term
compares the cross-modal cosine of the synthetic class means with the real one's, so it is zero at synthetic =
real and leaves each modality's own mean alone; a Euclidean distance between audio and visual common means is not
(the decoupler aligns the two modalities in angle only).

The contrastive objective (decoupler training and L_samp) follows the data's pairing (``pairing``; default the
dataset's :attr:`~mmdistill.data.paired.PairedDataset.pairing`): symmetric InfoNCE for instance-paired data,
cross-modal supervised contrastive (same class = positive) for label-paired data, where audio i and visual i share
only their class [unverified: the paper's data is instance-paired].

``fresh_prob`` [unverified, our extension]: with this probability an iteration uses a freshly drawn random
encoder pair (as DM) instead of a bank pair. A fresh pair has no decoupler, so such an iteration has the private
term only - which is DM's loss in that pair. The paper's bank is fixed; the option adds diversity on top.

Ablation switches, as the paper reports them: ``no_private``, ``no_common``, ``no_intermodal``, ``random_bank``
(the bank's encoders stay at their random init; decouplers are still trained on them), ``no_prototypes``,
``no_infonce``. A switched-off term is not computed and logs 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError
from ..experts.bank import BankConfig, DecouplerConfig, EncoderBank, cross_modal_contrastive
from .av_common import MODALITIES, AVMatchConfig, AVMatchDistiller
from .base import METHODS


@dataclass
class DAVDDConfig(AVMatchConfig):
    """DAVDD settings. Optimiser, lr 0.2 and factor 2 follow AVDD/the paper; every loss weight is [unverified]."""

    step_mode: Literal["summed"] = "summed"  # one step per iteration (L_samp spans all classes)
    factor: int = 2  # the paper's l = 2
    lambda_private: float = 1.0  # [unverified]
    lambda_common: float = 1.0  # [unverified]
    lambda_intermodal: float = 1.0  # [unverified]
    lambda_sample: float = 1.0  # [unverified]
    lambda_align: float = 1.0  # [unverified]
    ema_momentum: float = 0.99  # [unverified] β of the EMA prototype bank
    tau: float = 0.07  # [unverified] temperature of L_samp
    # "auto": the dataset's pairing; "instance": InfoNCE; "label": supervised contrastive (decoupler and L_samp)
    pairing: Literal["auto", "instance", "label"] = "auto"
    fresh_prob: float = 0.0  # [unverified, our extension] share of iterations on a fresh random pair (private term only)
    # the paper's ablations
    no_private: bool = False
    no_common: bool = False
    no_intermodal: bool = False
    random_bank: bool = False
    no_prototypes: bool = False
    no_infonce: bool = False
    bank: BankConfig = field(default_factory=BankConfig)
    decoupler: DecouplerConfig = field(default_factory=DecouplerConfig)


def intermodal_cosine_gap(ma_s: Tensor, mv_s: Tensor, ma_r: Tensor, mv_r: Tensor) -> Tensor:
    """(cos(mean z_a^s, mean z_v^s) − cos(mean z_a^r, mean z_v^r))²: zero when synthetic = real."""
    return (F.cosine_similarity(ma_s, mv_s, dim=0) - F.cosine_similarity(ma_r, mv_r, dim=0)) ** 2


@METHODS.register("davdd")
class DAVDD(AVMatchDistiller):
    name = "davdd"
    Config: ClassVar[type] = DAVDDConfig
    precision_passes: ClassVar[bool] = False  # its encoder passes do not go through class_means: fp32 only

    def init_extra(self) -> None:
        cfg = self.cfg
        if not 0.0 <= cfg.fresh_prob <= 1.0:
            raise ConfigError(f"davdd: fresh_prob must be in [0, 1], got {cfg.fresh_prob}")
        if not cfg.bank.pretrained:
            raise ConfigError("davdd: set random_bank: true for the random-bank ablation, not bank.pretrained")
        if cfg.no_private and cfg.fresh_prob > 0:
            raise ConfigError("davdd: fresh pairs carry only the private term; no_private with fresh_prob > 0 is empty")
        self.objective = self.dataset.pairing if cfg.pairing == "auto" else cfg.pairing
        self.bank_cfg = replace(cfg.bank, pretrained=not cfg.random_bank)
        self.dec_cfg = replace(cfg.decoupler, objective=self.objective)
        self.bank_dir, self.decouplers, self.encoders = None, [], []
        self.bank_report: dict[str, Any] = {}
        if cfg.fresh_prob < 1.0:
            bank = EncoderBank(self.dataset, cfg.net, self.bank_cfg, device=str(self.device))
            self.bank_dir = bank.dir
            self.decouplers = bank.ensure_decouplers(self.dec_cfg)
            self.encoders = [bank.load_encoders(k) for k in range(self.bank_cfg.size)]
            self.bank_report = bank.report(self.dec_cfg)
        self.proto = torch.zeros(len(self.encoders), self.num_classes, 2, cfg.decoupler.dim, device=self.device)
        self.proto_seen = torch.zeros(len(self.encoders), self.num_classes, dtype=torch.bool, device=self.device)

    def state_dict(self) -> dict[str, Any]:
        s = super().state_dict()
        s["proto"] = self.proto.detach().cpu().clone()
        s["proto_seen"] = self.proto_seen.detach().cpu().clone()
        return s

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.proto.copy_(state["proto"].to(self.device))
        self.proto_seen.copy_(state["proto_seen"].to(self.device))

    def export(self):
        syn = super().export()
        syn.meta["bank"] = {"dir": str(self.bank_dir) if self.bank_dir else None, "fresh_prob": self.cfg.fresh_prob,
                            "objective": self.objective, **self.bank_report}
        return syn

    def update_prototypes(self, k: int, c: int, means: Tensor) -> Tensor:
        """EMA update of π[k, c] (2, d) with this iteration's real common class means; returns π[k, c]."""
        with torch.no_grad():
            if bool(self.proto_seen[k, c]):
                self.proto[k, c] = self.cfg.ema_momentum * self.proto[k, c] + (1 - self.cfg.ema_momentum) * means
            else:
                self.proto[k, c] = means
                self.proto_seen[k, c] = True
        return self.proto[k, c]

    def losses(self, it: int) -> tuple[Tensor, dict[str, float]]:
        """The total loss of one iteration and its (unweighted) terms."""
        cfg = self.cfg
        fresh = cfg.fresh_prob >= 1.0 or (cfg.fresh_prob > 0 and float(torch.rand(())) < cfg.fresh_prob)
        if fresh:
            k, enc, dec = -1, self.random_nets(), None
        else:
            k = int(torch.randint(len(self.encoders), ()))
            enc, dec = self.encoders[k], self.decouplers[k]
        use_common = dec is not None and not cfg.no_common
        use_inter = dec is not None and not cfg.no_intermodal
        use_proto = dec is not None and not cfg.no_prototypes
        use_sample = dec is not None and not cfg.no_infonce
        need_z = use_common or use_inter or use_proto or use_sample
        zero = torch.zeros((), device=self.device)
        l_pri, l_com, l_int, l_al = zero, zero, zero, zero
        zs: dict[str, list[Tensor]] = {m: [] for m in MODALITIES}
        for c in range(self.num_classes):
            aug = self.draw_aug()
            real, syn = self.real_batch(c), self.syn_batch(c)
            mz_r, mz_s = {}, {}
            for m in MODALITIES:
                with torch.no_grad():
                    fr = enc[m].embed(self.dsa(real[m], m, aug))
                    if need_z:
                        mz_r[m] = dec.common_features(m, fr).mean(0)  # type: ignore[union-attr]
                fs = enc[m].embed(self.dsa(syn[m], m, aug))
                if not cfg.no_private:
                    l_pri = l_pri + ((fr.mean(0) - fs.mean(0)) ** 2).sum()
                if need_z:
                    z = dec.common_features(m, fs)  # type: ignore[union-attr]
                    zs[m].append(z)
                    mz_s[m] = z.mean(0)
                    if use_common:
                        l_com = l_com + ((mz_r[m] - mz_s[m]) ** 2).sum()
            if use_inter:
                l_int = l_int + intermodal_cosine_gap(mz_s["audio"], mz_s["visual"], mz_r["audio"], mz_r["visual"])
            if use_proto:
                proto = self.update_prototypes(k, c, torch.stack([mz_r["audio"], mz_r["visual"]]))
                l_al = l_al + sum(((mz_s[m] - proto[i]) ** 2).sum() for i, m in enumerate(MODALITIES))
        l_s = zero
        if use_sample:
            y = torch.cat([torch.full((z.shape[0],), c, dtype=torch.long, device=self.device)
                           for c, z in enumerate(zs["audio"])])
            l_s = cross_modal_contrastive(torch.cat(zs["audio"]), torch.cat(zs["visual"]), y, cfg.tau, self.objective)
        total = (cfg.lambda_private * l_pri + cfg.lambda_common * l_com + cfg.lambda_intermodal * l_int
                 + cfg.lambda_sample * l_s + cfg.lambda_align * l_al)
        logs = {"loss": float(total.detach()), "l_private": float(l_pri.detach()), "l_common": float(l_com.detach()),
                "l_intermodal": float(l_int.detach()), "l_sample": float(l_s.detach()), "l_align": float(l_al.detach()),
                "bank_pair": float(k)}
        return total, logs

    def step(self, it: int) -> dict[str, float]:
        self.opt.zero_grad(set_to_none=True)
        total, logs = self.losses(it)
        if total.requires_grad:
            total.backward()
            self.opt.step()
        return logs
