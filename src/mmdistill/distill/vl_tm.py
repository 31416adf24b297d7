"""Image-text trajectory matching, the base of ``mtt-vl`` and ``tesla-vl`` (:mod:`.mtt_vl`, :mod:`.tesla_vl`), which
:mod:`.lors` extends with learned similarity targets and :mod:`.repblend` with representation blending.

Synthetic pairs are images (pixels) and text vectors in the frozen text encoder's space (MiniLM here,
BERT-CLS in the papers), plus learned student step sizes ``syn_lr_img`` / ``syn_lr_txt``. One outer iteration:

1. sample an expert k and a start epoch s < ``max_start_epoch``; θ₀ = θ*ₖ,ₛ, θ* = θ*ₖ,ₛ₊M (M = ``expert_epochs``);
2. ``syn_steps`` student SGD steps on synthetic minibatches (contrastive loss below), step sizes η;
3. normalised trajectory-matching loss and its gradient (:func:`.trajectory.trajectory_match`:
   ``unrolled`` | ``reverse`` (exact, constant memory) | ``tesla`` (approximate, constant memory));
4. one SGD step (momentum, per-group lrs: pixels, text, step sizes, and what a subclass learns) on the synthetic data.

Inner contrastive loss: ``infonce`` (identity targets) or a soft loss (``wbce`` ...) against the targets of
:meth:`VLTrajectoryDistiller.targets` (the identity here; LoRS's learned S). Logits use ``exp(log_scale)``;
``reproduce_scale_bug`` uses ``log_scale`` as MTT-VL's released ``distill.py`` does.

``student: heads``: θ holds only the two projection heads; the frozen encoder's features of all synthetic images
are computed once per iteration with a graph to the pixels, the inner loop runs on features, and the feature
gradient is pushed through the encoder once.

Subclass hooks (the base implements them as "nothing learned beyond pixels, texts and step sizes"):
:meth:`~VLTrajectoryDistiller.init_extras`, :meth:`~VLTrajectoryDistiller.extra_groups`,
:meth:`~VLTrajectoryDistiller.extra_data`, :meth:`~VLTrajectoryDistiller.targets`,
:meth:`~VLTrajectoryDistiller.mix`, :meth:`~VLTrajectoryDistiller.draw_mix`, and the export/state pair
:meth:`~VLTrajectoryDistiller.export_extras` / :meth:`~VLTrajectoryDistiller.extra_state`.

Fields where our defaults differ from the released LoRS/RepBlend/MTT-VL code (the paper configs set the released
behaviour): ``batching`` (``independent`` draw per step vs ``chunks`` of one permutation), ``lr_floor`` (learned
step sizes clamped at 1e-6 vs not clamped), ``grad_clip`` (off in both by default), ``lr_grad`` (under
``merge_branches`` the released code takes the step sizes' gradient from the per-branch loss), ``gradient`` and
``loss`` (see :mod:`.lors`). :meth:`draw` takes the iteration's random choices and :meth:`apply` runs the iteration on
them, so fixed draws reproduce a reference iteration exactly (tests/test_parity_vl.py).

Budget fairness (``budget_fair``): the pair count is reduced until pixels + text + learned targets + step
sizes fit ``pairs × floats_per_pair`` stored floats (the papers' N−1 pairs); ``meta["budget_fairness"]``
records the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from ..errors import ConfigError
from ..precision import autocast, check_precision, widen
from ..seed import derive_seed, generator
from ..experts.buffers import ExpertBuffer, ExpertConfig, ensure_buffer
from ..synth import SyntheticSet
from .base import Distiller, restore_optimizer
from ..losses.contrastive import info_nce, soft_loss
from ..losses.learned_similarity import similarity_floats
from .trajectory import GRADIENT_MODES, trajectory_match
from .vl_common import CAPTIONS_NOTE, buffer_model, nearest_captions, noise_images, noise_texts, require_retrieval


LR_FIELDS = ("lr_img", "lr_txt", "lr_sim", "lr_lr")


@dataclass
class VLTMConfig:
    """Fields shared by the four methods; each method's Config only changes defaults."""

    iterations: int = 200  # outer iterations (papers: 3000 LoRS/RepBlend, 50,000 MTT-VL)
    syn_steps: int = 8  # student steps per iteration (papers: 8)
    expert_epochs: int = 1  # M: target is M expert epochs after the start (papers: 1)
    max_start_epoch: int = 2  # start epoch s drawn from [0, max_start_epoch) (papers: 2)
    minibatch: int = 0  # synthetic pairs per student step; 0 = all (MTT-VL: 100 = all; LoRS/RepBlend: 20)
    gradient: Literal["unrolled", "reverse", "tesla"] = "unrolled"  # see distill/trajectory.py
    merge_branches: bool = False  # (D_img + D_txt) / (Δ_img + Δ_txt) instead of the per-branch sum
    lr_grad: Literal["match", "per_branch"] = "match"  # step-size gradient from the matching loss, or (tesla only) from
    # the per-branch loss even with merge_branches, as LoRS/RepBlend's released code computes it
    student: Literal["full", "heads"] = "full"  # which parameters are matched (must equal the buffer's mode)
    loss: str = "infonce"  # inner loss: "infonce" or a soft loss of mmdistill/losses/contrastive.py (wbce, bce, kl, ...)
    reproduce_scale_bug: bool = False  # MTT-VL's inner loop scales logits by log_scale, not exp(log_scale)
    lr_img: float = 100.0  # pixel lr (papers: 100-1000 at 224 px on NFNet; [unverified] at our scale)
    lr_txt: float = 100.0  # text-vector lr
    lr_lr: float = 1e-2  # lr of the learned step sizes (papers: 1e-2)
    momentum: float = 0.5  # SGD momentum of every group (papers: 0.5)
    batching: Literal["independent", "chunks"] = "independent"  # student minibatches: an independent draw per step, or
    # disjoint chunks of one permutation, a new permutation when it runs out (LoRS/RepBlend released code)
    lr_floor: float = 1e-6  # clamp the learned step sizes at >= lr_floor after each update (0 = off, as the released code)
    grad_clip: float = 0.0  # clip the gradient norm of pixels, text vectors and learned targets, each (0 = off; MDM clips 1.0)
    lr_teacher: float = 0.1  # initial student step size (= the experts' lr)
    # per-budget learning rates, e.g. {500: {lr_txt: 0.3}}: the papers tune lrs per budget (their
    # hyperparameter table); keys are pair budgets, values override the lr_* fields above for that budget only
    lrs_by_budget: dict[int, dict[str, float]] = field(default_factory=dict)
    learn_lr: bool = True  # learn syn_lr_img / syn_lr_txt
    pix_init: Literal["real", "noise"] = "real"  # random real pairs or per-channel Gaussian pixels
    txt_init: Literal["real", "noise"] = "real"  # real caption vectors or Gaussian with the real mean/std
    budget_fair: bool = True  # reduce the pair count so every stored float fits the budget (N-1 pairs)
    buffer: str | None = None  # expert buffer directory; None = the cache path keyed by dataset + experts
    experts: ExpertConfig = field(default_factory=ExpertConfig)  # how to train the buffer if it is missing
    precision: str = "fp32"  # student forward passes: "fp32" or "bf16" (autocast on CUDA; mmdistill/precision.py)


@dataclass
class IterationDraw:
    """The random choices of one outer iteration, drawn before it runs (so a run can be replayed or fed fixed draws)."""

    expert: int  # expert trajectory k
    start_epoch: int  # start epoch s
    batches: list[Tensor]  # synthetic row indices of each student step
    blend: list[tuple[float, Tensor]] = field(default_factory=list)  # mixing draws (RepBlend's (λ, π)) per student step


def fair_pairs(requested: int, floats_per_pair: int, similarity: str, rank: int, step_sizes: int) -> dict[str, Any]:
    """Largest n <= requested with n·fpp + similarity floats(n) + step sizes <= requested·fpp."""
    budget = requested * floats_per_pair
    n = requested
    while n > 1 and n * floats_per_pair + similarity_floats(n, similarity, rank) + step_sizes > budget:
        n -= 1
    used = n * floats_per_pair + similarity_floats(n, similarity, rank) + step_sizes
    return {"requested_pairs": requested, "pairs": n, "floats_per_pair": floats_per_pair, "budget_floats": budget,
            "pair_floats": n * floats_per_pair, "similarity_floats": similarity_floats(n, similarity, rank),
            "step_size_floats": step_sizes, "used_floats": used, "fits": used <= budget}


class VLTrajectoryDistiller(Distiller):
    """Shared implementation; subclasses set ``name`` and ``Config`` (their defaults)."""

    Config: ClassVar[type] = VLTMConfig
    budget_units: ClassVar[tuple[str, ...]] = ("pairs",)

    # --------------------------------------------------------------------------------------------- setup
    def _check(self) -> None:
        c = self.cfg
        require_retrieval(self.name, self.dataset)
        if c.gradient not in GRADIENT_MODES:
            raise ConfigError(f"{self.name}: gradient must be one of {GRADIENT_MODES}, got {c.gradient!r}")
        if c.loss != "infonce":
            soft_loss(c.loss)
        if c.lr_grad not in ("match", "per_branch"):
            raise ConfigError(f"{self.name}: lr_grad must be 'match' or 'per_branch', got {c.lr_grad!r}")
        if c.lr_grad == "per_branch" and c.gradient != "tesla":
            raise ConfigError(f"{self.name}: lr_grad 'per_branch' (the released code's step-size gradient) needs gradient 'tesla'")
        if c.batching not in ("independent", "chunks"):
            raise ConfigError(f"{self.name}: batching must be 'independent' or 'chunks', got {c.batching!r}")
        check_precision(c.precision, f"{self.name}: precision")
        if c.expert_epochs < 1 or c.max_start_epoch < 1 or c.syn_steps < 1:
            raise ConfigError(f"{self.name}: expert_epochs, max_start_epoch and syn_steps must be >= 1")

    def _open_buffer(self) -> ExpertBuffer:
        c = self.cfg
        if c.experts.mode != c.student:
            raise ConfigError(f"{self.name}: experts.mode {c.experts.mode!r} must equal student {c.student!r}")
        buf = ensure_buffer(self.dataset, c.experts, c.buffer, progress=False)
        if buf.mode != c.student:
            raise ConfigError(f"{buf.path}: buffer mode {buf.mode!r} does not match student {c.student!r}")
        if c.max_start_epoch - 1 + c.expert_epochs > buf.epochs:
            raise ConfigError(f"{self.name}: max_start_epoch - 1 + expert_epochs = {c.max_start_epoch - 1 + c.expert_epochs} "
                              f"exceeds the buffer's {buf.epochs} epochs")
        return buf

    def _budget_lrs(self) -> None:
        """Apply ``lrs_by_budget[budget]`` to the lr_* fields (``meta.config`` then shows the lrs used)."""
        c = self.cfg
        over = {int(k): v for k, v in (c.lrs_by_budget or {}).items()}.get(int(self.budget.value), {})
        bad = sorted(k for k in over if k not in LR_FIELDS or not hasattr(c, k))
        if bad:
            raise ConfigError(f"{self.name}: lrs_by_budget may set only {', '.join(LR_FIELDS)}; got {', '.join(bad)}")
        if over:
            self.cfg = replace(c, **{k: float(v) for k, v in over.items()})

    def init(self) -> None:
        self._check()
        self._budget_lrs()
        c = self.cfg
        ds = self.dataset
        self.buffer = self._open_buffer()
        images, texts, t2i = ds.tensors["image"], ds.tensors["text"], ds.text_to_image
        self.model, self.flat = buffer_model(self.buffer, ds, c.student, self.device)
        kind, rank = self.target_floats_spec()
        self.fairness = fair_pairs(self.budget.value, ds.floats_per_pair(), kind, rank,
                                   2 if c.learn_lr else 0) if c.budget_fair else {
            "requested_pairs": self.budget.value, "pairs": self.budget.value, "fits": None}
        n = int(self.fairness["pairs"])
        self.n = n
        # draws of the init come from their own generator: training a missing buffer above reseeds the globals
        gen = generator(derive_seed(self.seed, "vl-init"))
        idx = torch.randperm(len(ds), generator=gen)[:n]
        self.init_indices = idx
        x = images[t2i[idx]].clone() if c.pix_init == "real" else noise_images(images, n, gen)
        t = texts[idx].clone() if c.txt_init == "real" else noise_texts(texts, n, gen)
        dev = self.device
        self.images = x.to(dev).requires_grad_(True)
        self.texts = t.to(dev).requires_grad_(True)
        self.syn_lr_img = torch.tensor([c.lr_teacher], device=dev).requires_grad_(c.learn_lr)
        self.syn_lr_txt = torch.tensor([c.lr_teacher], device=dev).requires_grad_(c.learn_lr)
        self.init_extras(n, gen)
        self.opt = self.build_optimizer()

    def build_optimizer(self) -> torch.optim.SGD:
        """SGD with one group per learned tensor kind: pixels, text vectors, step sizes, then a subclass's."""
        c = self.cfg
        groups = [{"params": [self.images], "lr": c.lr_img}, {"params": [self.texts], "lr": c.lr_txt}]
        if c.learn_lr:
            groups.append({"params": [self.syn_lr_img, self.syn_lr_txt], "lr": c.lr_lr})
        groups += self.extra_groups()
        return torch.optim.SGD(groups, lr=c.lr_img, momentum=c.momentum)

    # ------------------------------------------------------------------------------ hooks (subclasses)
    def target_floats_spec(self) -> tuple[str, int]:
        """(kind, rank) of learned targets, for the budget arithmetic (:func:`fair_pairs`); none here."""
        return "none", 0

    def init_extras(self, n: int, gen: torch.Generator) -> None:
        """Create what a subclass learns besides pixels, texts and step sizes (drawn from ``gen``); none here."""

    def extra_groups(self) -> list[dict[str, Any]]:
        """Optimiser groups of :meth:`init_extras`' tensors."""
        return []

    def extra_params(self) -> list[Tensor]:
        """The tensors of :meth:`extra_groups` (gradient clipping)."""
        return []

    def extra_data(self) -> dict[str, Tensor]:
        """Learned tensors the inner loss reads through the data dict (their gradients come back in it)."""
        return {}

    @property
    def learned_targets(self) -> bool:
        """Whether :meth:`targets` returns learned soft targets (then ``infonce`` means the soft InfoNCE)."""
        return False

    def targets(self, d: dict[str, Tensor], idx: Tensor) -> Tensor:
        """Soft targets of the minibatch ``idx`` (B, B): the identity here."""
        return torch.eye(idx.numel(), dtype=d["text"].dtype, device=d["text"].device)

    def draw_mix(self, mb: int) -> list[tuple[float, Tensor]]:
        """Per-student-step mixing draws (global RNG), made after the minibatches; none here."""
        return []

    def mix(self, step: int, img: Tensor, txt: Tensor) -> tuple[Tensor, Tensor]:
        """The minibatch's representations as the inner loss sees them: unchanged here."""
        return img, txt

    def export_extras(self, extras: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Add learned tensors and their description to an exported set; nothing here."""

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state` (called under ``torch.no_grad``)."""

    # ---------------------------------------------------------------------------------------- inner loss
    def inner_loss(self, theta: Tensor, idx: Tensor, step: int, d: dict[str, Tensor]) -> Tensor:
        img, txt = self.mix(step, d["image"][idx], d["text"][idx])
        with autocast(self.cfg.precision, theta.device):
            logits = self.flat.logits(theta, img, txt, scale_bug=self.cfg.reproduce_scale_bug)
        logits = widen(logits)
        if self.cfg.loss == "infonce" and not self.learned_targets:
            return info_nce(logits)
        return soft_loss(self.cfg.loss)(logits, self.targets(d, idx))

    def _data(self, batches: list[Tensor] | None = None) -> dict[str, Tensor]:
        if self.cfg.student == "full":
            img = self.images
        elif batches is None:
            with autocast(self.cfg.precision, self.images.device):
                img = widen(self.flat.encode_frozen(self.images))
        else:  # heads: encode only the synthetic images this iteration's minibatches use (rows not used stay 0)
            used = torch.unique(torch.cat(batches))
            with autocast(self.cfg.precision, self.images.device):
                feats = widen(self.flat.encode_frozen(self.images[used]))
            img = feats.new_zeros(self.n, feats.shape[1]).index_put((used,), feats)
        return {"image": img, "text": self.texts, **self.extra_data()}

    # ---------------------------------------------------------------------------------------------- step
    def _batches(self, mb: int) -> list[Tensor]:
        c = self.cfg
        if c.batching == "independent":
            return [torch.randperm(self.n)[:mb] for _ in range(c.syn_steps)]
        if c.batching != "chunks":
            raise ConfigError(f"{self.name}: batching must be 'independent' or 'chunks', got {c.batching!r}")
        out, perm, pos = [], torch.randperm(self.n), 0
        for _ in range(c.syn_steps):
            if pos + mb > self.n:
                perm, pos = torch.randperm(self.n), 0
            out.append(perm[pos:pos + mb])
            pos += mb
        return out

    def draw(self) -> IterationDraw:
        """This iteration's randomness (global RNG): expert, start epoch, minibatches, then mixing draws."""
        c = self.cfg
        k = int(torch.randint(self.buffer.num_experts, (1,)))
        s = int(torch.randint(c.max_start_epoch, (1,)))
        mb = self.n if c.minibatch <= 0 else min(c.minibatch, self.n)
        batches = self._batches(mb)
        return IterationDraw(k, s, batches, self.draw_mix(mb))

    def step(self, it: int) -> dict[str, float]:
        return self.apply(self.draw())

    def apply(self, draw: IterationDraw) -> dict[str, float]:
        """One outer iteration with the given draws: student unroll, matching gradient, one SGD step."""
        c = self.cfg
        dev = self.images.device
        k, s = draw.expert, draw.start_epoch
        batches = [b.to(dev) for b in draw.batches]  # draws are made on the CPU (same on every device)
        start = self.buffer.load(k, s).to(dev)
        target = self.buffer.load(k, s + c.expert_epochs).to(dev)
        self.mix_draws = [(lam, perm.to(dev)) for lam, perm in draw.blend]
        data = self._data(batches)
        etas = [self.syn_lr_img, self.syn_lr_txt]
        res = trajectory_match(c.gradient, self.inner_loss, start, target, batches,
                               [e if c.learn_lr else e.detach() for e in etas], data, self.flat.sizes, c.merge_branches,
                               eta_per_branch=c.lr_grad == "per_branch")
        self.opt.zero_grad(set_to_none=True)
        torch.autograd.backward([data[k] for k in res.data_grads], [res.data_grads[k] for k in res.data_grads])
        if c.learn_lr:
            self.syn_lr_img.grad = res.eta_grads[0].detach().clone()
            self.syn_lr_txt.grad = res.eta_grads[1].detach().clone()
        gi = float(self.images.grad.norm()) if self.images.grad is not None else 0.0
        gt = float(self.texts.grad.norm()) if self.texts.grad is not None else 0.0
        if c.grad_clip > 0:  # per group: pixels and text vectors live on very different scales
            torch.nn.utils.clip_grad_norm_([self.images], c.grad_clip)
            torch.nn.utils.clip_grad_norm_([self.texts], c.grad_clip)
            if self.extra_params():
                torch.nn.utils.clip_grad_norm_(self.extra_params(), c.grad_clip)
        self.opt.step()
        if c.lr_floor > 0:
            with torch.no_grad():  # step sizes stay positive (a negative lr would train the student backwards)
                self.syn_lr_img.clamp_(min=c.lr_floor)
                self.syn_lr_txt.clamp_(min=c.lr_floor)
        return {"match_loss": res.loss, "start_epoch": float(s), "grad_norm_image": gi, "grad_norm_text": gt,
                "grad_lr_img": float(res.eta_grads[0].detach().sum()), "grad_lr_txt": float(res.eta_grads[1].detach().sum()),
                "syn_lr_img": float(self.syn_lr_img.detach()), "syn_lr_txt": float(self.syn_lr_txt.detach())}

    # -------------------------------------------------------------------------------------- export/state
    def export(self) -> SyntheticSet:
        c = self.cfg
        t = self.texts.detach().cpu().clone()
        extras = {"syn_lr_img": self.syn_lr_img.detach().cpu().clone(),
                  "syn_lr_txt": self.syn_lr_txt.detach().cpu().clone()} if c.learn_lr else {}
        meta = self.base_meta()
        self.export_extras(extras, meta)
        meta["captions"] = nearest_captions(self.dataset, t)
        meta["captions_note"] = CAPTIONS_NOTE
        meta["budget_fairness"] = self.fairness
        meta["init_indices"] = self.init_indices.tolist()
        meta["student"] = c.student
        meta["gradient"] = c.gradient
        meta["expert_buffer"] = {"path": str(self.buffer.path), "config_key": self.buffer.manifest.get("config_key"),
                                 "mode": self.buffer.mode, "num_experts": self.buffer.num_experts, "epochs": self.buffer.epochs}
        enc = self.buffer.encoder_path
        meta["image_encoder_weights"] = str(enc) if enc else None
        meta["eval_hint"] = {"trained_modules": "heads" if c.student == "heads" else "full", "lr_source": "learned" if c.learn_lr else "fixed",
                             "net": self.buffer.net.protocol_fields()}
        return SyntheticSet(tensors={"image": self.images.detach().cpu().clone(), "text": t}, extras=extras, meta=meta)

    def state_dict(self) -> dict[str, Any]:
        s = {"images": self.images.detach().cpu().clone(), "texts": self.texts.detach().cpu().clone(),
             "syn_lr_img": self.syn_lr_img.detach().cpu().clone(), "syn_lr_txt": self.syn_lr_txt.detach().cpu().clone(),
             "opt": self.opt.state_dict(), "init_indices": self.init_indices}
        return {**s, **self.extra_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.images.copy_(state["images"])
            self.texts.copy_(state["texts"])
            self.syn_lr_img.copy_(state["syn_lr_img"])
            self.syn_lr_txt.copy_(state["syn_lr_txt"])
            self.load_extra_state(state)
        self.init_indices = state["init_indices"]
        restore_optimizer(self.opt, state["opt"])  # lrs from the config (resume after divergence)
