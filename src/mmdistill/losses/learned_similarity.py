"""LoRS learned similarity: the soft ground truth of synthetic pairs.

``lowrank``: S = diag(a) + (α/r) · L Rᵀ, a ∈ ℝᴺ, L, R ∈ ℝᴺˣʳ; init a = 1, L ~ N(0, 1), R = 0, so S₀ = I.
``full``: a learnable N×N matrix initialised to I (LoRS ``--sim_type full``).

:meth:`Similarity.block` returns S[B, B] for minibatch rows B from the *factors* (a_B, L_B, R_B), never
materialising S. Stored in a SyntheticSet as extras ``sim_a``, ``sim_L``, ``sim_R`` (or ``sim_full``);
α, r, the kind and the soft loss go in ``meta["similarity"]``. Evaluation calls
:func:`loss_and_target_from_set` to train against S.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

import torch
from torch import Tensor

from ..errors import ConfigError
from .contrastive import soft_loss

Kind = Literal["lowrank", "full"]


def similarity_floats(n: int, kind: str, rank: int) -> int:
    """Stored floats of the similarity of ``n`` pairs (for budget fairness)."""
    if kind == "lowrank":
        return n + 2 * n * rank
    if kind == "full":
        return n * n
    if kind == "none":
        return 0
    raise ConfigError(f"unknown similarity kind {kind!r} (lowrank, full or none)")


class Similarity:
    """The learned similarity's tensors (``params``) and its minibatch block."""

    def __init__(self, tensors: dict[str, Tensor], kind: Kind, alpha: float = 1.0, rank: int = 0) -> None:
        self.kind = kind
        self.alpha = float(alpha)
        self.rank = int(rank)
        self.tensors = tensors

    # ------------------------------------------------------------ construction
    @classmethod
    def init(cls, n: int, kind: Kind = "lowrank", rank: int = 10, alpha: float = 1.0,
             gen: torch.Generator | None = None) -> "Similarity":
        if kind == "lowrank":
            if rank < 1:
                raise ConfigError(f"similarity rank must be >= 1, got {rank}")
            t = {"a": torch.ones(n), "L": torch.randn(n, rank, generator=gen), "R": torch.zeros(n, rank)}
        elif kind == "full":
            t = {"full": torch.eye(n)}
        else:
            raise ConfigError(f"unknown similarity kind {kind!r} (lowrank or full)")
        return cls(t, kind, alpha, rank)

    def params(self) -> list[Tensor]:
        return list(self.tensors.values())

    def to(self, device: torch.device | str) -> "Similarity":
        """Move the factors to ``device`` (before ``requires_grad_``: the moved tensors are the leaves)."""
        self.tensors = {k: v.to(device) for k, v in self.tensors.items()}
        return self

    def requires_grad_(self, flag: bool = True) -> "Similarity":
        for t in self.tensors.values():
            t.requires_grad_(flag)
        return self

    # ------------------------------------------------------------ values
    def block_from(self, tensors: dict[str, Tensor], idx: Tensor) -> Tensor:
        """S[idx, idx] from the given factor tensors (lets callers pass detached copies)."""
        if self.kind == "full":
            m = tensors["full"]
            return m[idx][:, idx]
        a, L, R = tensors["a"], tensors["L"], tensors["R"]
        same = (idx[:, None] == idx[None, :]).to(a.dtype)  # diag(a) restricted to rows/cols idx (repeats too)
        return same * a[idx][:, None] + (self.alpha / self.rank) * (L[idx] @ R[idx].T)

    def block(self, idx: Tensor) -> Tensor:
        return self.block_from(self.tensors, idx)

    def matrix(self) -> Tensor:
        """The materialised N×N matrix (tests, visualisation)."""
        if self.kind == "full":
            return self.tensors["full"]
        a, L, R = self.tensors["a"], self.tensors["L"], self.tensors["R"]
        return torch.diag(a) + (self.alpha / self.rank) * (L @ R.T)

    # ------------------------------------------------------------ storage
    def extras(self) -> dict[str, Tensor]:
        return {f"sim_{k}": v.detach().cpu().clone() for k, v in self.tensors.items()}

    def meta(self, loss: str) -> dict[str, Any]:
        return {"kind": self.kind, "alpha": self.alpha, "rank": self.rank, "loss": loss,
                "form": "diag(a) + (alpha/rank) L R^T" if self.kind == "lowrank" else "full N x N"}

    @classmethod
    def from_extras(cls, extras: dict[str, Tensor], meta: dict[str, Any]) -> "Similarity":
        kind = meta.get("kind") or ("full" if "sim_full" in extras else "lowrank")
        if kind == "full":
            if "sim_full" not in extras:
                raise ConfigError("synthetic set: similarity kind 'full' needs extra 'sim_full'")
            return cls({"full": extras["sim_full"]}, "full")
        missing = [k for k in ("sim_a", "sim_L", "sim_R") if k not in extras]
        if missing:
            raise ConfigError(f"synthetic set: low-rank similarity needs extras {missing}")
        L = extras["sim_L"]
        if "alpha" not in meta:
            raise ConfigError("synthetic set: meta['similarity']['alpha'] missing (needed to rebuild S)")
        return cls({"a": extras["sim_a"], "L": L, "R": extras["sim_R"]}, "lowrank", float(meta["alpha"]), int(L.shape[1]))


def loss_and_target_from_set(syn) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]:
    """``(target_fn(idx) -> S[idx, idx], loss_fn(logits, S_B) -> loss)`` for training on a set with S.

    The loss is the one the set was distilled with (``meta["similarity"]["loss"]``, default ``wbce``).
    """
    meta = dict(syn.meta.get("similarity") or {})
    sim = Similarity.from_extras(syn.extras, meta)
    loss = soft_loss(str(meta.get("loss", "wbce")))

    def target_fn(idx: Tensor) -> Tensor:
        with torch.no_grad():
            return sim.block(torch.as_tensor(idx, dtype=torch.long)).float()

    return target_fn, loss
