"""MDM: multimodal distribution matching (Jeong et al., CVPR 2026). Method ``mdm``.

Single-level distillation of image-text pairs: no student unroll, no learned step sizes, no similarity
matrix. Learned tensors: the synthetic pixels and text vectors only. Per outer iteration:

1. **Teacher** (``teacher``), rebuilt every iteration from the expert buffer (the trajectory family's
   per-epoch snapshots, :mod:`mmdistill.experts.buffers`):
   * ``mixed`` (paper): two (expert, epoch) checkpoints θ₁, θ₂ with epochs in [``min_epoch``, ``max_epoch``]
     (a second draw of the same expert takes another epoch, as the code), merged layer by layer against the
     anchor θ₀ with Model-Stock (:mod:`.model_stock`): θ = θ₀ + α·t·½(Δ₁ + Δ₂), t = 2cosφ/(1 + cosφ), α = 0.5;
   * ``naive``: r·θ₁ + (1 − r)·θ₀, r ~ U(``naive_min``, ``naive_max``) (code: 0.1, 0.9);
   * ``expert``: θ₁; ``pretrained``: θ₀.

   Anchor θ₀ (``anchor``): ``fresh`` (paper supplement S2.2 and the code, which builds a new model every
   iteration) = the pretrained image encoder (the buffer's epoch-0 encoder, identical for all experts) and
   freshly initialised projection heads drawn from the iteration's RNG (which heads: ``fresh_heads``, below); ``expert_init`` = the first sampled
   expert's epoch-0 snapshot (its own initial heads).
2. **Features**: the teacher embeds a real batch (``batch_real`` random pairs, 256 in the script, under
   no_grad) and a synthetic batch (min(``batch_syn``, N) pairs, 64 in the code); ẑᵛ, ẑᵗ L2-normalised.
3. **Loss**: ``w_nce``·InfoNCE(synthetic pairs) + ``w_agr``·GKE(Uˢ, Uʳ) + ``w_dis``·GKE(Gˢ, Gʳ) with
   u = normalize(ẑᵛ + ẑᵗ) (agreement), g = normalize(ẑᵛ − ẑᵗ) (discrepancy), the geodesic Gaussian kernel
   (σ = 0.5) and unbiased off-diagonal intra-set means (:mod:`.kernels`). Logits = exp(log(1/τ))·cos, τ = 0.07.
   An unbiased MMD² below 0 is clamped to 0 before the square root (as the code), so a term whose two batches
   already match within the estimator's noise gives no gradient that iteration (``unbiased: false`` always pushes).
4. **Update**: SGD, momentum 0.5, on pixels (``lr_img``) and text vectors (``lr_txt``) after clipping the
   gradient norm at 1.0 (``clip: joint`` = one norm over both, as the code's ``clip_grad_norm_([img, txt])``).

**Initialisation** (``init``): ``kmeans`` (paper) = k-means (K = N) on the joint embedding [ẑᵛ; ẑᵗ] of all
real pairs under one teacher drawn from the init seed, each synthetic pair seeded by a real pair near its centroid
(:mod:`.kmeans_init`). ``kmeans_metric: cosine`` with ``kmeans_pick: in_cluster`` is the public code (spherical
k-means, the nearest real pair taken within the cluster); ``euclidean`` (scikit-learn, ``kmeans_seeding:
random | k-means++``) with ``distinct`` (nearest pair over all pairs, collisions resolved) is our default and
is a different clustering, not an equivalent one. ``random`` = N random real pairs; ``noise`` = per-channel
Gaussian pixels and Gaussian text vectors with the real mean/std.

**Anchor heads** (``fresh_heads``): the public code has no image projection head — its anchor's image side is the
pretrained encoder the experts start from, and only the text projection is new each iteration. ``text`` mirrors
that: θ₀'s image side (encoder and our linear image head) is the expert's epoch-0 snapshot and only the text head
is re-initialised; ``both`` (our default) also re-initialises the image head, which leaves the teacher's image
embedding mostly random at small scale (the head holds most of the image branch's parameters there).

Where the public code and the paper differ (andyj1/mdm), the fields take the paper's value and
say so: ``w_nce`` 1.0 (paper/script; argparse 0.1), ``merge_alpha`` 0.5 (argparse 1.0), ``sqrt_mmd`` on
(script), ``unbiased`` on (code; the paper writes plain means), epochs [1, E] (paper: [1, 10] of 10; the code's
``max_start_epoch`` default is 3) — ``max_epoch`` 0 means the buffer's last epoch.

The evaluation trains at a fixed lr (no learned step sizes; MDM's ``evaluate_synset``), ``eval_hint`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError, DataError
from ..precision import autocast, check_precision, widen
from ..experts.buffers import MANIFEST, ExpertBuffer, ExpertConfig, default_buffer_dir, ensure_buffer
from ..seed import derive_seed, seed_everything
from ..synth import SyntheticSet
from .base import METHODS, Distiller, restore_optimizer
from .kernels import gke
from .kmeans_init import joint_features, kmeans_select
from ..losses.contrastive import contrastive_logits, info_nce, log_scale_of
from .model_stock import model_stock_merge
from .vl_common import CAPTIONS_NOTE, buffer_model, nearest_captions, noise_images, noise_texts, require_retrieval
from .vl_tm import fair_pairs

TEACHERS = ("mixed", "naive", "expert", "pretrained")
INITS = ("kmeans", "random", "noise")


@dataclass
class MDMConfig:
    """MDM settings; defaults are the paper's (Table S3) unless marked."""

    iterations: int = 200  # outer iterations (paper: up to 3000; converges in 50-200)
    init: Literal["kmeans", "random", "noise"] = "kmeans"  # synthetic-pair initialisation (paper: kmeans)
    kmeans_seeding: Literal["random", "k-means++"] = "random"  # centroid seeding (code: random samples) [unverified]
    kmeans_n_init: int = 1  # scikit-learn KMeans restarts (random_state derived from the run seed)
    kmeans_max_iter: int = 100
    teacher: Literal["mixed", "naive", "expert", "pretrained"] = "mixed"  # per-iteration teacher (paper: mixed)
    anchor: Literal["fresh", "expert_init"] = "fresh"  # θ₀: pretrained encoder + fresh heads (paper S2.2, code)
    fresh_heads: Literal["both", "text"] = "both"  # heads re-initialised in a fresh anchor; code: "text" (no image head)
    kmeans_metric: Literal["euclidean", "cosine"] = "euclidean"  # k-means clustering; code: "cosine" (spherical)
    kmeans_pick: Literal["distinct", "in_cluster"] = "distinct"  # real pair per centroid; code: "in_cluster"
    merge_alpha: float = 0.5  # α of the merge (paper 0.5; code argparse default 1.0)
    min_epoch: int = 1  # checkpoints drawn from epochs [min_epoch, max_epoch] (paper/code: from 1)
    max_epoch: int = 0  # 0 = the buffer's last epoch (paper: [1, 10] of 10) [unverified: code default 3]
    naive_min: float = 0.1  # naive teacher: r ~ U(naive_min, naive_max) (code defaults)
    naive_max: float = 0.9
    w_nce: float = 1.0  # InfoNCE weight on the synthetic pairs (paper/script 1.0; code argparse 0.1)
    w_agr: float = 0.8  # λ_agr, GKE on agreement directions u = normalize(z_img + z_txt)
    w_dis: float = 0.8  # λ_dis, GKE on discrepancy directions g = normalize(z_img - z_txt)
    sigma_agr: float = 0.5  # geodesic Gaussian kernel bandwidths
    sigma_dis: float = 0.5
    sqrt_mmd: bool = True  # GKE = sqrt(MMD²) (code --sqrtmmd, on in sh/distill.sh); False: MMD²
    unbiased: bool = True  # off-diagonal intra-set means (code); False: plain means (paper text)
    diversity_weight: float = 1.0  # code's diversity_weight_{u,g} on the synthetic intra-set term (1 = plain MMD)
    temperature: float = 0.0  # InfoNCE τ; 0 = the buffer's (0.07)
    batch_real: int = 256  # real pairs per iteration (script: 256)
    batch_syn: int = 64  # synthetic pairs per iteration, min(batch_syn, N) (code: 64)
    lr_img: float = 100.0  # pixel lr (paper Table S3: 100-5000 at 224 px) [unverified at our scale]
    lr_txt: float = 100.0  # text-vector lr
    momentum: float = 0.5  # SGD momentum (paper)
    grad_clip: float = 1.0  # gradient-norm clip (paper 1.0; 0 = off)
    clip: Literal["joint", "per_group"] = "joint"  # one norm over pixels+text (code) or one per group
    buffer: str | None = None  # expert buffer directory; None = the cache path keyed by dataset + experts
    train_buffer: bool = True  # train a missing buffer first; False = error naming the missing directory
    experts: ExpertConfig = field(default_factory=ExpertConfig)  # the trajectory family's buffer (mode full)
    precision: str = "fp32"  # teacher forward passes: "fp32" or "bf16" (autocast on CUDA; mmdistill/precision.py)


@METHODS.register("mdm")
class MDM(Distiller):
    name = "mdm"
    Config: ClassVar[type] = MDMConfig
    budget_units: ClassVar[tuple[str, ...]] = ("pairs",)

    # --------------------------------------------------------------------------------------------- setup
    def _check(self) -> None:
        c = self.cfg
        require_retrieval("mdm", self.dataset)
        if c.teacher not in TEACHERS:
            raise ConfigError(f"mdm: teacher must be one of {TEACHERS}, got {c.teacher!r}")
        if c.init not in INITS:
            raise ConfigError(f"mdm: init must be one of {INITS}, got {c.init!r}")
        if c.anchor not in ("fresh", "expert_init"):
            raise ConfigError(f"mdm: anchor must be 'fresh' or 'expert_init', got {c.anchor!r}")
        if c.fresh_heads not in ("both", "text"):
            raise ConfigError(f"mdm: fresh_heads must be 'both' or 'text', got {c.fresh_heads!r}")
        if c.kmeans_metric not in ("euclidean", "cosine"):
            raise ConfigError(f"mdm: kmeans_metric must be 'euclidean' or 'cosine', got {c.kmeans_metric!r}")
        if c.kmeans_pick not in ("distinct", "in_cluster"):
            raise ConfigError(f"mdm: kmeans_pick must be 'distinct' or 'in_cluster', got {c.kmeans_pick!r}")
        if c.clip not in ("joint", "per_group"):
            raise ConfigError(f"mdm: clip must be 'joint' or 'per_group', got {c.clip!r}")
        if c.batch_real < 2 or c.batch_syn < 2:
            raise ConfigError("mdm: batch_real and batch_syn must be >= 2 (the kernel terms need pairs of samples)")
        if not 0.0 <= c.naive_min <= c.naive_max <= 1.0:
            raise ConfigError(f"mdm: need 0 <= naive_min <= naive_max <= 1, got {c.naive_min}, {c.naive_max}")
        if min(c.w_nce, c.w_agr, c.w_dis) < 0 or c.w_nce + c.w_agr + c.w_dis == 0:
            raise ConfigError("mdm: loss weights w_nce, w_agr, w_dis must be >= 0 and not all 0")
        check_precision(c.precision, "mdm: precision")
        if c.min_epoch < 0 or c.iterations < 0:
            raise ConfigError("mdm: min_epoch and iterations must be >= 0")

    def _open_buffer(self) -> ExpertBuffer:
        c = self.cfg
        path = c.buffer or default_buffer_dir(self.dataset, c.experts)
        from pathlib import Path

        if not c.train_buffer and not (Path(path) / MANIFEST).is_file():
            raise DataError(f"{path}: expert buffer missing (no {MANIFEST}); train it with `mmdistill experts --config FILE` "
                            f"or set params.train_buffer: true")
        buf = ensure_buffer(self.dataset, c.experts, path, progress=False) if c.train_buffer else ExpertBuffer.open(path, self.dataset)
        hi = c.max_epoch or buf.epochs
        if not 1 <= c.min_epoch <= hi <= buf.epochs:
            raise ConfigError(f"mdm: epochs [min_epoch, max_epoch] = [{c.min_epoch}, {hi}] must lie within the buffer's "
                              f"1..{buf.epochs} ({buf.path})")
        if c.teacher == "mixed" and buf.num_experts * (hi - c.min_epoch + 1) < 2:
            raise ConfigError(f"mdm: teacher 'mixed' merges two different checkpoints; {buf.path} offers only one "
                              f"(experts x epochs {c.min_epoch}..{hi})")
        return buf

    def init(self) -> None:
        self._check()
        c = self.cfg
        ds = self.dataset
        self.buffer = self._open_buffer()
        self.max_epoch = c.max_epoch or self.buffer.epochs
        images, texts = ds.tensors["image"], ds.tensors["text"]
        self.model, self.flat = buffer_model(self.buffer, ds, self.buffer.mode, self.device, what="model")
        for p in self.model.parameters():  # the teacher is frozen: θ is a plain tensor, only the data learn
            p.requires_grad_(False)
        self.log_scale = self.flat.log_scale if c.temperature <= 0 else log_scale_of(c.temperature)
        fresh = ("text_head.",) if c.fresh_heads == "text" else ("image_head.", "text_head.")
        heads = torch.zeros(self.flat.numel, dtype=torch.bool)  # positions in θ of the heads a fresh anchor redraws
        pos = 0
        for name, k in zip(self.flat.names, self.flat.numels):
            if name.startswith(fresh):
                heads[pos:pos + k] = True
            pos += k
        self.head_mask = heads.to(self.device)
        self.fairness = fair_pairs(self.budget.value, ds.floats_per_pair(), "none", 0, 0)
        n = self.budget.value
        self.n = n
        # the init draws its own seed: training a missing buffer above reseeds the global RNGs
        seed_everything(derive_seed(self.seed, "mdm-init"))
        self.init_info: dict[str, Any] = {"init": c.init}
        if c.init == "noise":
            x = noise_images(images, n)
            t = noise_texts(texts, n)
            idx = torch.full((n,), -1, dtype=torch.long)
        else:
            if c.init == "random":
                idx = torch.randperm(len(ds))[:n]
            else:
                theta, tinfo = self.teacher()
                feats = self.real_features(theta)
                idx, kinfo = kmeans_select(feats, n, derive_seed(self.seed, "kmeans"), c.kmeans_n_init, c.kmeans_max_iter,
                                             c.kmeans_seeding, c.kmeans_metric, c.kmeans_pick)
                self.init_info.update({"kmeans": kinfo, "teacher": tinfo})
            x = images[ds.text_to_image[idx]].clone()
            t = texts[idx].clone()
        self.init_indices = idx
        self.images = x.float().to(self.device).requires_grad_(True)
        self.texts = t.float().to(self.device).requires_grad_(True)
        self.opt = torch.optim.SGD([{"params": [self.images], "lr": c.lr_img}, {"params": [self.texts], "lr": c.lr_txt}],
                                   lr=c.lr_img, momentum=c.momentum)

    # -------------------------------------------------------------------------------------------- teacher
    def _fresh_heads(self) -> Tensor:
        """Projection heads re-initialised from the global RNG, as a flat vector over θ's head positions."""
        with torch.no_grad():
            mods = (self.model.text_head,) if self.cfg.fresh_heads == "text" else (self.model.image_head, self.model.text_head)
            for m in mods:
                for sub in m.modules():
                    if isinstance(sub, torch.nn.Linear):
                        sub.reset_parameters()
        return self.flat.flat()[self.head_mask]

    def _device(self) -> torch.device:
        """Where θ and the learned tensors live (the model's device)."""
        return next(self.model.parameters()).device

    def _anchor(self, k: int) -> Tensor:
        theta0 = self.buffer.load(k, 0).to(self._device()).clone()
        if self.cfg.anchor == "fresh":
            theta0[self.head_mask] = self._fresh_heads()
        return theta0

    def _draw(self, exclude: tuple[int, int] | None = None) -> tuple[int, int]:
        lo, hi = self.cfg.min_epoch, self.max_epoch
        k = int(torch.randint(self.buffer.num_experts, (1,)))
        pool = [e for e in range(lo, hi + 1) if exclude is None or (k, e) != exclude]
        if not pool:  # same expert and its only epoch: take another expert
            k = (k + 1 + int(torch.randint(self.buffer.num_experts - 1, (1,)))) % self.buffer.num_experts
            pool = list(range(lo, hi + 1))
        return k, pool[int(torch.randint(len(pool), (1,)))]

    def teacher(self) -> tuple[Tensor, dict[str, Any]]:
        """This iteration's frozen teacher θ (flat) and what it was made of (global RNG)."""
        c = self.cfg
        k1, e1 = self._draw()
        theta0 = self._anchor(k1)
        info: dict[str, Any] = {"teacher": c.teacher, "expert1": k1, "epoch1": e1}
        if c.teacher == "pretrained":
            return theta0, info
        theta1 = self.buffer.load(k1, e1).to(self._device())
        if c.teacher == "expert":
            return theta1, info
        if c.teacher == "naive":
            r = c.naive_min + (c.naive_max - c.naive_min) * float(torch.rand(()))
            info["ratio"] = r
            return r * theta1 + (1.0 - r) * theta0, info
        k2, e2 = self._draw(exclude=(k1, e1))
        theta, t = model_stock_merge(theta1, self.buffer.load(k2, e2).to(self._device()), theta0, self.flat.numels, c.merge_alpha)
        info.update({"expert2": k2, "epoch2": e2, "t_mean": float(t.mean()), "t_min": float(t.min()), "t_max": float(t.max())})
        return theta, info

    # ------------------------------------------------------------------------------------------- features
    def _image_input(self, x: Tensor) -> Tensor:
        return x if self.flat.mode == "full" else self.flat.encode_frozen(x)

    def embed(self, theta: Tensor, images: Tensor, texts: Tensor) -> tuple[Tensor, Tensor]:
        images, texts = images.to(theta.device), texts.to(theta.device)  # real rows live on the CPU
        with autocast(self.cfg.precision, theta.device):
            zi, zt = self.flat.embed(theta, self._image_input(images), texts)
        zi, zt = widen(zi), widen(zt)
        return F.normalize(zi, dim=1), F.normalize(zt, dim=1)

    @torch.no_grad()
    def real_features(self, theta: Tensor, chunk: int = 1024) -> Tensor:
        """Joint features f = normalize([ẑᵛ; ẑᵗ]) of every real pair (images encoded once each)."""
        ds = self.dataset
        images, texts = ds.tensors["image"], ds.tensors["text"]
        zi = torch.cat([self.embed(theta, images[s:s + chunk], texts[:1])[0] for s in range(0, images.shape[0], chunk)])
        zt = torch.cat([self.embed(theta, images[:1], texts[s:s + chunk])[1] for s in range(0, texts.shape[0], chunk)])
        return joint_features(zi[ds.text_to_image].cpu(), zt.cpu())

    # ---------------------------------------------------------------------------------------------- loss
    def loss_terms(self, theta: Tensor, real_idx: Tensor, syn_idx: Tensor) -> dict[str, Tensor]:
        c = self.cfg
        ds = self.dataset
        with torch.no_grad():
            real_idx = real_idx.cpu()  # the real pairs stay on the CPU; embed() moves each batch
            ri, rt = self.embed(theta, ds.tensors["image"][ds.text_to_image[real_idx]], ds.tensors["text"][real_idx])
        syn_idx = syn_idx.to(self.images.device)
        si, st = self.embed(theta, self.images[syn_idx], self.texts[syn_idx])
        nce = info_nce(contrastive_logits(si, st, self.log_scale))
        u_r, u_s = F.normalize(ri + rt, dim=1), F.normalize(si + st, dim=1)
        g_r, g_s = F.normalize(ri - rt, dim=1), F.normalize(si - st, dim=1)
        agr = gke(u_s, u_r, c.sigma_agr, sqrt=c.sqrt_mmd, unbiased=c.unbiased, weight_xx=c.diversity_weight)
        dis = gke(g_s, g_r, c.sigma_dis, sqrt=c.sqrt_mmd, unbiased=c.unbiased, weight_xx=c.diversity_weight)
        total = c.w_nce * nce + c.w_agr * agr + c.w_dis * dis
        return {"loss": total, "infonce": nce, "gke_agr": agr, "gke_dis": dis}

    def step(self, it: int) -> dict[str, float]:
        c = self.cfg
        theta, tinfo = self.teacher()
        real_idx = torch.randperm(len(self.dataset))[:min(c.batch_real, len(self.dataset))]
        syn_idx = torch.randperm(self.n)[:min(c.batch_syn, self.n)]
        return self.apply(theta, real_idx, syn_idx.to(self.images.device), tinfo)

    def apply(self, theta: Tensor, real_idx: Tensor, syn_idx: Tensor, tinfo: dict[str, Any] | None = None) -> dict[str, float]:
        """One update with a given teacher θ and batches: loss, backward, clip, SGD step."""
        c = self.cfg
        tinfo = tinfo or {}
        terms = self.loss_terms(theta, real_idx, syn_idx)
        self.opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        gi = float(self.images.grad.norm()) if self.images.grad is not None else 0.0
        gt = float(self.texts.grad.norm()) if self.texts.grad is not None else 0.0
        if c.grad_clip > 0:
            if c.clip == "joint":
                torch.nn.utils.clip_grad_norm_([self.images, self.texts], c.grad_clip)
            else:
                torch.nn.utils.clip_grad_norm_([self.images], c.grad_clip)
                torch.nn.utils.clip_grad_norm_([self.texts], c.grad_clip)
        self.opt.step()
        logs = {"match_loss": float(terms["loss"].detach()), "infonce": float(terms["infonce"].detach()),
                "gke_agr": float(terms["gke_agr"].detach()), "gke_dis": float(terms["gke_dis"].detach()),
                "grad_norm_image": gi, "grad_norm_text": gt}
        for k in ("t_mean", "ratio"):
            if k in tinfo:
                logs[k] = float(tinfo[k])
        return logs

    # -------------------------------------------------------------------------------------- export/state
    def export(self) -> SyntheticSet:
        t = self.texts.detach().cpu().clone()
        meta = self.base_meta()
        meta["captions"] = nearest_captions(self.dataset, t)
        meta["captions_note"] = CAPTIONS_NOTE
        meta["budget_fairness"] = self.fairness
        meta["init"] = self.init_info
        meta["init_indices"] = self.init_indices.tolist()
        meta["teacher"] = {"kind": self.cfg.teacher, "anchor": self.cfg.anchor, "merge_alpha": self.cfg.merge_alpha,
                           "epochs": [self.cfg.min_epoch, self.max_epoch]}
        meta["expert_buffer"] = {"path": str(self.buffer.path), "config_key": self.buffer.manifest.get("config_key"),
                                 "mode": self.buffer.mode, "num_experts": self.buffer.num_experts, "epochs": self.buffer.epochs}
        enc = self.buffer.encoder_path
        meta["image_encoder_weights"] = str(enc) if enc else None
        meta["eval_hint"] = {"trained_modules": "full" if self.buffer.mode == "full" else "heads", "lr_source": "fixed",
                             "net": self.buffer.net.protocol_fields()}
        return SyntheticSet(tensors={"image": self.images.detach().cpu().clone(), "text": t}, extras={}, meta=meta)

    def state_dict(self) -> dict[str, Any]:
        return {"images": self.images.detach().cpu().clone(), "texts": self.texts.detach().cpu().clone(), "opt": self.opt.state_dict(),
                "init_indices": self.init_indices}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"])
            self.texts.copy_(state["texts"])
        self.init_indices = state["init_indices"]
        restore_optimizer(self.opt, state["opt"])  # lrs from the config (resume after divergence)
