"""Trajectory matching, written once: the matching loss and three ways to get its gradient.

A student starts at an expert checkpoint θ₀ = θ*ₛ and takes N SGD steps on synthetic minibatches with
learned per-branch step sizes η (one per parameter branch, e.g. image / text):

    θ_{k+1} = θ_k − η ⊙ ∇θ ℓ(θ_k; synthetic batch k)

and is compared with the expert's later checkpoint θ* = θ*_{s+M}. Matching loss:

* per branch (default): Σ_b ‖θ̂ᵇ_N − θ*ᵇ‖² / ‖θᵇ₀ − θ*ᵇ‖²  (MTT-VL's normalised bi-trajectory loss);
* merged (``merge=True``, LoRS ``--merge_loss_branches``): Σ_b ‖θ̂ᵇ_N − θ*ᵇ‖² / Σ_b ‖θᵇ₀ − θ*ᵇ‖².

Gradient modes (:func:`trajectory_match`), all returning d loss / d data and d loss / d η:

* ``"unrolled"`` - MTT / MTT-VL: the N steps are unrolled with ``create_graph=True`` and autograd
  differentiates through them. Exact. Memory grows linearly with N (the graph of every step is kept).
* ``"reverse"`` - constant-memory **exact** reverse mode: a graph-free forward
  pass stores only the N+1 parameter vectors; the backward pass walks the steps in reverse, recomputing each
  step's gradient with ``create_graph`` and doing one Hessian-vector product per step to carry the adjoint
  a_k = dL/dθ_k = a_{k+1} − H_k(η ⊙ a_{k+1}) backwards. Equal to ``unrolled`` up to round-off (tested to
  rtol 1e-4); memory is flat in N (one step's graph at a time, plus N+1 parameter vectors).
* ``"tesla"`` - the TESLA approximation used by LoRS's released code (Cui et al. 2023, arXiv 2211.10586):
  every step's data gradient uses the *final* adjoint a_N = dL/dθ_N, i.e. the student parameters θ_k are
  treated as constants and the Hessian terms that carry the adjoint through later steps are dropped. Not exact (differs from ``unrolled`` for N > 1); cheaper (no θ-HVP) and constant-memory.
  The step sizes get the exact gradient of the closed-form loss ‖θ₀ − η ⊙ Σ g_k − θ*‖² / Δ with the g_k fixed.
  This is the gradient LoRS's and RepBlend's released code compute (one iteration agrees with it to ≤ 1e-11
  relative at float64, tests/test_parity_vl.py), so the paper configs use it.

How far ``tesla`` is from the true gradient depends on the inner loss. Measured on an emoji-like network
(ConvNet-3 width 32, 32 px, 384-d text, 20-pair minibatches, η = 0.03), cosine between the ``tesla`` and the
exact (``reverse`` = ``unrolled``) data gradient, and the exact gradient's norm relative to TESLA's:

=========================  ======================  ======================
setting                    WBCE                    soft InfoNCE
=========================  ======================  ======================
N = 99 pairs, 5 steps      cosine −0.004, ×7.6      cosine 0.95
N = 499, 8 steps, LoRS     cosine −0.57, ×31        cosine 0.93
N = 499, 8 steps, RepBlend cosine −0.80, ×547       cosine 0.97
=========================  ======================  ======================

On the parity tests' tiny inputs (10 pairs, 3 steps of 4) the cosine is −0.42 (LoRS) and −0.36 (RepBlend).
With WBCE the two point in different directions: ``reverse`` optimises the stated matching loss, ``tesla``
reproduces what the papers ran. Which one a config uses is the ``gradient`` field.

The inner loss is a callback ``inner_loss(theta, idx, step, data) -> scalar``; ``data`` maps names to the
learned tensors (or tensors computed from them, e.g. frozen-encoder features) and the callback indexes the
rows ``idx`` itself. Per-step randomness (RepBlend's λ and π) must be drawn before the call and looked up by
``step``, so the reverse pass replays it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

import torch
from torch import Tensor

from ..errors import ConfigError

GradientMode = Literal["unrolled", "reverse", "tesla"]
InnerLoss = Callable[[Tensor, Tensor, int, dict[str, Tensor]], Tensor]
GRADIENT_MODES = ("unrolled", "reverse", "tesla")


def branch_vector(etas: Sequence[Tensor], sizes: Sequence[int]) -> Tensor:
    """Expand one step size per branch to a per-parameter vector (branches laid out in order)."""
    if len(etas) != len(sizes):
        raise ConfigError(f"{len(etas)} step sizes for {len(sizes)} parameter branches")
    return torch.cat([e.reshape(1).expand(int(n)) for e, n in zip(etas, sizes)])


def branch_sums(vec: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    return [p.sum().reshape(1) for p in vec.split([int(s) for s in sizes])]


def match_loss(theta: Tensor, start: Tensor, target: Tensor, sizes: Sequence[int], merge: bool = False,
               eps: float = 1e-12) -> Tensor:
    """Normalised parameter-matching loss per branch (or merged); see the module docstring."""
    num = [((a - b) ** 2).sum() for a, b in zip(theta.split(list(sizes)), target.split(list(sizes)))]
    den = [((a - b) ** 2).sum() for a, b in zip(start.split(list(sizes)), target.split(list(sizes)))]
    if merge:
        return sum(num) / (sum(den) + eps)
    return sum(n / (d + eps) for n, d in zip(num, den))


@dataclass
class MatchResult:
    loss: float
    data_grads: dict[str, Tensor]
    eta_grads: list[Tensor]
    info: dict[str, float] = field(default_factory=dict)


def _zeros_like(d: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: torch.zeros_like(v) for k, v in d.items()}


def trajectory_match(
    mode: GradientMode,
    inner_loss: InnerLoss,
    start: Tensor,
    target: Tensor,
    batches: Sequence[Tensor],
    etas: Sequence[Tensor],
    data: dict[str, Tensor],
    sizes: Sequence[int],
    merge: bool = False,
    eta_per_branch: bool = False,
) -> MatchResult:
    """Run the student from ``start`` over ``batches`` and return the matching loss and its gradients
    w.r.t. every tensor in ``data`` and every step size in ``etas`` (see the module docstring).

    ``eta_per_branch`` (``tesla`` only): the step sizes' gradient comes from the per-branch loss even when
    ``merge`` is set, as LoRS's and RepBlend's released code computes it; the data gradients keep ``merge``."""
    if eta_per_branch and mode != "tesla":
        raise ConfigError(f"eta_per_branch (the released code's step-size gradient) needs gradient 'tesla', got {mode!r}")
    if mode == "unrolled":
        return _unrolled(inner_loss, start, target, batches, etas, data, sizes, merge)
    if mode in ("reverse", "tesla"):
        return _constant_memory(inner_loss, start, target, batches, etas, data, sizes, merge, exact=mode == "reverse",
                                eta_per_branch=eta_per_branch)
    raise ConfigError(f"unknown trajectory gradient mode {mode!r}; known: {', '.join(GRADIENT_MODES)}")


def _unrolled(inner_loss, start, target, batches, etas, data, sizes, merge) -> MatchResult:
    eta_vec = branch_vector(etas, sizes)
    cur = start.detach().clone().requires_grad_(True)
    for i, idx in enumerate(batches):
        g = torch.autograd.grad(inner_loss(cur, idx, i, data), cur, create_graph=True)[0]
        cur = cur - eta_vec * g
    loss = match_loss(cur, start.detach(), target.detach(), sizes, merge)
    wrt = [*data.values(), *etas]
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    grads = [torch.zeros_like(w) if g is None else g for w, g in zip(wrt, grads)]
    keys = list(data)
    return MatchResult(float(loss.detach()), {k: grads[i] for i, k in enumerate(keys)},
                       [g.reshape(e.shape) for g, e in zip(grads[len(keys):], etas)])


def _constant_memory(inner_loss, start, target, batches, etas, data, sizes, merge, exact: bool,
                     eta_per_branch: bool = False) -> MatchResult:
    eta_vec = branch_vector([e.detach() for e in etas], sizes)
    d0 = {k: v.detach() for k, v in data.items()}
    # forward: no graph kept, only the parameter vectors
    thetas = [start.detach()]
    cur = start.detach()
    for i, idx in enumerate(batches):
        c = cur.clone().requires_grad_(True)
        g = torch.autograd.grad(inner_loss(c, idx, i, d0), c)[0]
        cur = (c - eta_vec * g).detach()
        thetas.append(cur)
    th_n = cur.clone().requires_grad_(True)
    loss = match_loss(th_n, start.detach(), target.detach(), sizes, merge)
    a = torch.autograd.grad(loss, th_n)[0]
    a_eta = None  # tesla with eta_per_branch: the step sizes' adjoint from the per-branch loss (constant)
    if eta_per_branch and merge:
        th_b = cur.clone().requires_grad_(True)
        a_eta = torch.autograd.grad(match_loss(th_b, start.detach(), target.detach(), sizes, False), th_b)[0]
    data_grads = _zeros_like(d0)
    eta_grad = torch.zeros_like(eta_vec)
    keys = list(d0)
    for i in reversed(range(len(batches))):
        c = thetas[i].clone().requires_grad_(exact)
        if not exact:
            c = c.requires_grad_(True)
        dd = {k: v.clone().requires_grad_(True) for k, v in d0.items()}
        g = torch.autograd.grad(inner_loss(c, batches[i], i, dd), c, create_graph=True)[0]
        eta_grad -= (a if a_eta is None else a_eta) * g.detach()
        wrt = ([c] if exact else []) + [dd[k] for k in keys]
        hv = torch.autograd.grad((g * (eta_vec * a)).sum(), wrt, allow_unused=True)
        off = 1 if exact else 0
        for j, k in enumerate(keys):
            if hv[off + j] is not None:
                data_grads[k] -= hv[off + j]
        if exact:
            a = a - hv[0]
    eta_grads = [g.reshape(e.shape) for g, e in zip(branch_sums(eta_grad, sizes), etas)]
    return MatchResult(float(loss.detach()), data_grads, eta_grads)
