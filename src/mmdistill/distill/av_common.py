"""Shared machinery of the audio-visual matching methods (``dm``, ``avdd``, ``davdd``): the synthetic
parameterisation, the DM loop over two modalities (Zhao & Bilen, WACV 2023, as AVDD adapts it: Kushwaha et al.,
TMLR 2024) and the per-modality ConvNets.

* State: one learnable leaf tensor per (modality, class), stored (N, ...) per class; labels fixed,
  class-major. Per-class leaves make ``step_mode="per_class"`` exact: ``zero_grad(set_to_none=True)``
  leaves the other classes' grads ``None``, so SGD does not move them by stale momentum. AVDD steps one
  optimiser over the whole tensor per class, so momentum also moves the other classes' rows (measured: visual
  tensors 6-26 % apart after 1-4 iterations at momentum 0.5); ``momentum_leaves="per_modality"`` reproduces it.
* Optimiser: SGD with momentum (AVDD: lr 0.2 per modality, momentum 0.5), one parameter group per
  modality so the audio and visual step sizes can differ.
* Randomness: everything inside ``step`` uses the global RNG, which the run loop reseeds from
  ``(seed, it)`` before every iteration, so resume is exact and iteration t is reproducible.
* Export: stored tensors (C·N rows); ``meta["layout"]`` when factor > 1 (evaluation decodes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from ..coreset.proxy import ProxyConfig
from ..errors import ConfigError
from ..nets import create_net
from ..precision import autocast, check_precision, widen
from ..synth import SyntheticSet
from .. import factor as fac
from .base import Distiller, restore_optimizer
from ..dsa import DSAConfig, SiameseDSA
from .init import class_rows, init_synthetic

MODALITIES = ("audio", "visual")


@dataclass
class AVNetConfig:
    """Per-modality ConvNets (AVDD's). ``*_final_pool`` replaces the last pooling by an adaptive pool so
    audio and visual embeddings have equal size (needed for ICM/CGM); AVDD: audio (7, 7), visual depth 5."""

    arch: str = "convnet"
    width: int = 128
    norm: str = "instance"
    audio_depth: int = 3
    visual_depth: int = 5
    audio_final_pool: list[int] | None = field(default_factory=lambda: [7, 7])
    visual_final_pool: list[int] | None = None
    audio_first_pad: int | str = "dc"  # AVDD quirk: pad 3 whenever channel == 1
    visual_first_pad: int | str = "auto"

    def kwargs(self, modality: str) -> dict[str, Any]:
        if self.arch != "convnet":
            return {}
        depth = self.audio_depth if modality == "audio" else self.visual_depth
        fp = self.audio_final_pool if modality == "audio" else self.visual_final_pool
        pad = self.audio_first_pad if modality == "audio" else self.visual_first_pad
        return {"width": self.width, "depth": depth, "norm": self.norm, "final_pool": tuple(fp) if fp else None,
                "first_pad": pad}


@dataclass
class AVMatchConfig:
    """Fields shared by dm/avdd/davdd. Defaults are AVDD's released ones unless marked."""

    iterations: int = 5000
    lr_audio: float = 0.2
    lr_visual: float = 0.2
    momentum: float = 0.5
    batch_real: int = 128  # real pairs per class per iteration
    step_mode: Literal["per_class", "summed"] = "per_class"  # AVDD steps per class; DM sums
    init: Literal["real", "herding", "noise"] = "herding"
    factor: int = 1  # AVDD uses 2; 1 = no factorisation
    # Reference-loop switches (dm/avdd). "per_class"/"per_class" is ours; "per_iteration"/"per_modality" is AVDD's
    # main_DM_AV.py: one DSA seed per iteration for every class and both modalities, and one SGD leaf per
    # modality, so a class step also moves the other classes' rows by their momentum and the next class's loss
    # already sees them moved. (Under step_mode "summed" every leaf gets a gradient at the one step, so the two
    # momentum_leaves settings coincide there.)
    dsa_draw: Literal["per_class", "per_iteration"] = "per_class"
    momentum_leaves: Literal["per_class", "per_modality"] = "per_class"
    audio_layout: Literal["grid2d", "time1d"] = "grid2d"  # AVDD: grid2d; IDC speech: time1d
    visual_layout: Literal["grid2d"] = "grid2d"
    net: AVNetConfig = field(default_factory=AVNetConfig)
    dsa: DSAConfig = field(default_factory=DSAConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)  # feature run for herding init
    precision: str = "fp32"  # embedding passes of class_means: "fp32" or "bf16" (autocast on CUDA; mmdistill/precision.py)


class AVMatchDistiller(Distiller):
    """Base of the AV matching methods; subclasses implement :meth:`step`."""

    Config: ClassVar[type] = AVMatchConfig
    budget_units: ClassVar[tuple[str, ...]] = ("ipc",)
    reference_loop_options: ClassVar[bool] = False  # True where step() honours dsa_draw / momentum_leaves
    precision_passes: ClassVar[bool] = True  # False where step() embeds outside class_means (bf16 would not apply)

    def __init__(self, cfg: Any, dataset, budget, seed: int, device: str = "cpu") -> None:
        super().__init__(cfg, dataset, budget, seed, device)
        if dataset.task != "classification":
            raise ConfigError(f"method {self.name!r} needs an audio-visual classification dataset, got task {dataset.task!r}")
        missing = [m for m in MODALITIES if m not in dataset.tensors]
        if missing:
            raise ConfigError(f"method {self.name!r}: dataset {dataset.name!r} lacks modality {missing} (has {dataset.modalities})")
        check_precision(getattr(cfg, "precision", "fp32"), f"method {self.name!r}: precision")
        if getattr(cfg, "precision", "fp32") != "fp32" and not self.precision_passes:
            raise ConfigError(f"method {self.name!r}: precision {cfg.precision!r} is not implemented (it runs fp32)")
        if cfg.batch_real < 1:
            raise ConfigError(f"batch_real must be >= 1, got {cfg.batch_real}")
        for fld, default in (("dsa_draw", "per_class"), ("momentum_leaves", "per_class")):
            if getattr(cfg, fld, default) != default and not self.reference_loop_options:
                raise ConfigError(f"method {self.name!r} does not support {fld}={getattr(cfg, fld)!r} "
                                  f"(only dm and avdd implement AVDD's reference loop; use {default!r})")
        self.layouts = {"audio": cfg.audio_layout, "visual": cfg.visual_layout}
        self.mult = fac.multiplicity(self.layouts, cfg.factor)
        self.rows = class_rows(dataset)
        self.num_classes = len(self.rows)
        self.shapes = {m: tuple(dataset.tensors[m].shape[1:]) for m in MODALITIES}
        self.dsa = SiameseDSA(cfg.dsa, MODALITIES)

    # ------------------------------------------------------------------ state
    def init(self) -> None:
        gen = torch.Generator()
        gen.manual_seed(int(torch.randint(2**31 - 1, ())))
        per_mod, self.labels, self.init_info = init_synthetic(
            self.dataset, self.budget.value, self.cfg.factor, self.layouts, self.cfg.init, self.seed, self.cfg.proxy, gen)
        self.syn: dict[str, list[Tensor]] = {
            m: [t.to(self.device).requires_grad_(True) for t in per_mod[m]] for m in MODALITIES}
        self.opt = torch.optim.SGD(
            [{"params": self.syn["audio"], "lr": self.cfg.lr_audio}, {"params": self.syn["visual"], "lr": self.cfg.lr_visual}],
            lr=self.cfg.lr_audio, momentum=self.cfg.momentum)
        self.init_extra()

    def init_extra(self) -> None:
        """Hook for subclasses (banks, EMA prototypes)."""

    def state_dict(self) -> dict[str, Any]:
        return {"syn": {m: [t.detach().cpu().clone() for t in ts] for m, ts in self.syn.items()},
                "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for m, ts in state["syn"].items():
                for dst, src in zip(self.syn[m], ts):
                    dst.copy_(src.to(self.device))
        restore_optimizer(self.opt, state["opt"])  # momentum from the checkpoint, lrs from the config

    def export(self) -> SyntheticSet:
        meta = self.base_meta()
        meta["init"] = {k: v for k, v in self.init_info.items() if k != "source_indices"}
        meta["stored_ipc"] = self.budget.value
        meta["decoded_ipc"] = self.budget.value * self.mult
        if self.cfg.factor > 1:
            meta["layout"] = {"factor": self.cfg.factor, **self.layouts}
        return SyntheticSet(
            tensors={m: torch.cat([t.detach().cpu() for t in ts]).clone() for m, ts in self.syn.items()},
            labels=self.labels.clone(), meta=meta)

    # ------------------------------------------------------------------ pieces used by step()
    def random_nets(self) -> dict[str, nn.Module]:
        """Fresh randomly initialised, frozen nets per modality from the global RNG."""
        nets = {}
        for m in MODALITIES:
            net = create_net(self.cfg.net.arch, self.shapes[m], num_classes=0, **self.cfg.net.kwargs(m)).to(self.device)
            for p in net.parameters():
                p.requires_grad_(False)
            nets[m] = net
        return nets

    def real_batch(self, c: int) -> dict[str, Tensor]:
        r = self.rows[c]
        idx = r[torch.randperm(r.numel())[: self.cfg.batch_real]]
        return {m: self.dataset.tensors[m][idx].to(self.device, torch.float32) for m in MODALITIES}

    def syn_batch(self, c: int) -> dict[str, Tensor]:
        """Decoded synthetic pairs of class c (M·N rows, same block order in both modalities)."""
        return {m: fac.decode(self.syn[m][c], self.layouts[m], self.cfg.factor, self.mult) for m in MODALITIES}

    def draw_aug(self) -> dict:
        return self.dsa.draw(int(torch.randint(2**31 - 1, ())))

    def class_means(self, nets: dict[str, nn.Module], real: dict[str, Tensor], syn: dict[str, Tensor], aug: dict
                    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Mean embeddings (real detached, synthetic with grad) after the shared Siamese augmentation."""
        mu_r, mu_s = {}, {}
        with autocast(getattr(self.cfg, "precision", "fp32"), self.device):
            for m in MODALITIES:
                with torch.no_grad():
                    mu_r[m] = widen(nets[m].embed(self.dsa(real[m], m, aug))).mean(0)
                mu_s[m] = widen(nets[m].embed(self.dsa(syn[m], m, aug))).mean(0)
        return mu_r, mu_s

    def check_equal_dims(self, nets: dict[str, nn.Module]) -> None:
        da, dv = int(nets["audio"].feat_dim), int(nets["visual"].feat_dim)
        if da != dv:
            raise ConfigError(
                f"method {self.name!r}: audio embedding is {da}-d but visual is {dv}-d; ICM/CGM add audio and visual "
                f"means, so they must match (set net.audio_final_pool / net.visual_final_pool so width*h*w agree)")
