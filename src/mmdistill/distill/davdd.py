"""DAVDD (arXiv 2511.17890), the parameterised reconstruction of av-distillation.md §7.6 (method ``davdd``).

No paper text or code is available (§4): every component and default below is **[unverified]** and a
config field. Per iteration t: sample one pair k of the frozen encoder bank (:mod:`mmdistill.experts.bank`)
and its decouplers (common C_m^k, private P_m^k); for every class c, the real batch and the decoded
synthetic pairs get one Siamese DSA draw; with f = E_m^k(A(x)), c = C_m^k(f), p = P_m^k(f)::

    L_pri  = Σ_m ‖mean p_m^r − mean p_m^s‖²                                   (private: no cross terms)
    L_com  = Σ_m ‖mean c_m^r − mean c_m^s‖² + η(‖mean c_a^r − mean c_v^s‖² + ‖mean c_v^r − mean c_a^s‖²)
    π[k,c,m] ← β π[k,c,m] + (1−β) mean c_m^r       (EMA prototype bank, K×C×2×d; first visit: set)
    L_align = Σ_m ‖mean c_m^s − π[k,c,m]‖²
    L_sample = ½(CE(z_a z_vᵀ/τ) + CE(z_v z_aᵀ/τ)),  z = normalize(c^s), rows = synthetic pairs

L_sample is computed over ALL classes' decoded synthetic pairs at once (``infonce_scope="all"``, so it has
negatives even at IPC 1, factor 1) or per class (``"class"``). Degenerate guard: a group with fewer than 2
pairs (``"class"`` scope at IPC 1 with factor 1) has no negatives - it is skipped and counted in the
``infonce_skipped`` log field (a RuntimeWarning is issued once). One SGD step per iteration on
L = λ_pri L_pri + λ_com L_com + λ_s L_sample + λ_al L_align.

Ablations (bench labels): ``use_private=False`` (davdd-no-private), ``use_common=False`` (davdd-no-common;
removes L_com incl. the η term), ``bank.pretrained=False`` (davdd-random-nets: random-init frozen encoders,
decouplers still trained on them), ``use_proto=False`` (davdd-no-proto), ``use_infonce=False``
(davdd-no-infonce). A switched-off term is not computed and logs 0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from ..experts.bank import BankConfig, DecouplerConfig, EncoderBank, info_nce
from .av_common import MODALITIES, AVMatchConfig, AVMatchDistiller
from .base import METHODS


@dataclass
class DAVDDConfig(AVMatchConfig):
    """DAVDD settings; optimiser/lr/iterations start from AVDD's (§7.6). All loss settings [unverified]."""

    step_mode: Literal["summed"] = "summed"  # one step per iteration (all-class InfoNCE, §7.6)
    lambda_private: float = 1.0  # [unverified]
    lambda_common: float = 1.0  # [unverified]
    eta_intermodal: float = 1.0  # [unverified] weight (and form) of the intermodal common term
    lambda_sample: float = 1.0  # [unverified]
    lambda_align: float = 1.0  # [unverified]
    ema_momentum: float = 0.99  # [unverified] β of the EMA prototype bank
    tau: float = 0.07  # [unverified] InfoNCE temperature of L_sample
    infonce_scope: Literal["all", "class"] = "all"
    use_private: bool = True
    use_common: bool = True
    use_proto: bool = True
    use_infonce: bool = True
    bank: BankConfig = field(default_factory=BankConfig)
    decoupler: DecouplerConfig = field(default_factory=DecouplerConfig)


@METHODS.register("davdd")
class DAVDD(AVMatchDistiller):
    name = "davdd"
    Config: ClassVar[type] = DAVDDConfig
    _warned = False

    def init_extra(self) -> None:
        bank = EncoderBank(self.dataset, self.cfg.net, self.cfg.bank, device=str(self.device))
        self.bank_dir = bank.dir
        self.decouplers = bank.ensure_decouplers(self.cfg.decoupler)
        self.encoders = [bank.load_encoders(k) for k in range(self.cfg.bank.size)]
        k, d = len(self.encoders), self.cfg.decoupler.dim
        self.proto = torch.zeros(k, self.num_classes, 2, d, device=self.device)
        self.proto_seen = torch.zeros(k, self.num_classes, dtype=torch.bool, device=self.device)

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
        syn.meta["bank"] = {"dir": str(self.bank_dir), "pairs": len(self.encoders)}
        return syn

    def losses(self, it: int) -> tuple[Tensor, dict[str, float]]:
        """The total loss of one iteration and its (weighted-before-sum) terms."""
        cfg = self.cfg
        k = int(torch.randint(len(self.encoders), ()))
        enc, dec = self.encoders[k], self.decouplers[k]
        zero = torch.zeros((), device=self.device)
        l_pri, l_com, l_al = zero, zero, zero
        za: list[Tensor] = []
        zv: list[Tensor] = []
        for c in range(self.num_classes):
            aug = self.draw_aug()
            real, syn = self.real_batch(c), self.syn_batch(c)
            cr, pr, cs, ps = {}, {}, {}, {}
            for m in MODALITIES:
                with torch.no_grad():
                    fr = enc[m].embed(self.dsa(real[m], m, aug))
                    cr[m], pr[m] = dec.common[m](fr).mean(0), dec.private[m](fr).mean(0)
                fs = enc[m].embed(self.dsa(syn[m], m, aug))
                cs[m] = dec.common[m](fs)
                ps[m] = dec.private[m](fs) if cfg.use_private else None
            if cfg.use_private:
                l_pri = l_pri + sum(((pr[m] - ps[m].mean(0)) ** 2).sum() for m in MODALITIES)  # type: ignore[union-attr]
            mcs = {m: cs[m].mean(0) for m in MODALITIES}
            if cfg.use_common:
                l_com = l_com + sum(((cr[m] - mcs[m]) ** 2).sum() for m in MODALITIES)
                if cfg.eta_intermodal:
                    l_com = l_com + cfg.eta_intermodal * (((cr["audio"] - mcs["visual"]) ** 2).sum()
                                                          + ((cr["visual"] - mcs["audio"]) ** 2).sum())
            if cfg.use_proto:
                with torch.no_grad():
                    new = torch.stack([cr["audio"], cr["visual"]])
                    if bool(self.proto_seen[k, c]):
                        self.proto[k, c] = cfg.ema_momentum * self.proto[k, c] + (1 - cfg.ema_momentum) * new
                    else:
                        self.proto[k, c] = new
                        self.proto_seen[k, c] = True
                l_al = l_al + sum(((mcs[m] - self.proto[k, c, i]) ** 2).sum() for i, m in enumerate(MODALITIES))
            za.append(cs["audio"])
            zv.append(cs["visual"])
        l_s, skipped = zero, 0
        if cfg.use_infonce:
            groups = [(torch.cat(za), torch.cat(zv))] if cfg.infonce_scope == "all" else list(zip(za, zv))
            used = 0
            for a, v in groups:
                if a.shape[0] < 2:
                    skipped += 1
                    continue
                l_s = l_s + info_nce(a, v, cfg.tau)
                used += 1
            if used:
                l_s = l_s / used
            if skipped and not DAVDD._warned:
                DAVDD._warned = True
                warnings.warn(f"davdd: {skipped} InfoNCE group(s) have a single synthetic pair (no negatives) and are "
                              "skipped; use infonce_scope='all' or factor > 1", RuntimeWarning, stacklevel=2)
        total = cfg.lambda_private * l_pri + cfg.lambda_common * l_com + cfg.lambda_sample * l_s + cfg.lambda_align * l_al
        logs = {"loss": float(total.detach()), "l_private": float(l_pri.detach()), "l_common": float(l_com.detach()),
                "l_sample": float(l_s.detach()), "l_align": float(l_al.detach()), "infonce_skipped": float(skipped),
                "bank_pair": float(k)}
        return total, logs

    def step(self, it: int) -> dict[str, float]:
        self.opt.zero_grad(set_to_none=True)
        total, logs = self.losses(it)
        if total.requires_grad:
            total.backward()
            self.opt.step()
        return logs
