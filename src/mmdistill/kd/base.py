"""The contract every cross-modal KD loss follows.

A KD loss is an ``nn.Module`` registered in :data:`KD_LOSSES` under the method name used on the CLI and in
benchmark rows. Its class attributes say what it needs:

* ``Config`` - a dataclass of its hyper-parameters (mapped from YAML by ``mmdistill.config.from_dict``);
* ``needs`` - which tapped features the trainer must provide: ``"feat"`` (pooled penultimate, (B, D)) and/or
  ``"mid"`` (an intermediate map (B, C, H, W) or vector (B, d));
* ``trainable_teacher`` - True only for C2KD: the teacher stays in the optimiser and in ``train()``.

It is built as ``Loss(cfg, dims, num_classes, seed)`` (``dims`` = :class:`Dims`) and called on a
:class:`KDInputs`; it returns ``{term name: scalar}``, *including* the student's task CE, and the trainer
backpropagates their sum. Parameters the loss owns (projectors, shared heads, proxies) are trained with the
student: the trainer puts ``loss.parameters()`` into the optimiser.

Hooks, so that the trainer treats every method alike: :meth:`KDLoss.epoch_log` adds method-specific fields to
each epoch's log record (e.g. C2KD's share of samples passing its Kendall filter); :meth:`KDLoss.final_report`
adds fields to a seed's result after training, given a :class:`FinalProbe` on the test split (e.g. FD-CMKD's
band alignment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import Registry

KD_LOSSES: Registry[Any] = Registry("kd method")


@dataclass
class Dims:
    """Feature sizes of the tapped features (0 when a tap is not used)."""

    s_feat: int = 0
    t_feat: int = 0
    s_mid: int = 0
    t_mid: int = 0


@dataclass
class KDInputs:
    """One step's tensors. Teacher tensors are detached unless the method trains the teacher."""

    s_logits: Tensor
    t_logits: Tensor
    y: Tensor
    epoch: int = 0
    s_feat: Tensor | None = None
    t_feat: Tensor | None = None
    s_mid: Tensor | None = None
    t_mid: Tensor | None = None


@dataclass
class FinalProbe:
    """Test-split features for :meth:`KDLoss.final_report`: pooled ``feat`` taps of the trained student and of the
    teacher on each test row's first partner, computed on request (CPU tensors, (N, D))."""

    student_feat: Callable[[], Tensor]
    teacher_feat: Callable[[], Tensor]


class KDLoss(nn.Module):
    name: ClassVar[str] = ""
    Config: ClassVar[type] = object
    needs: ClassVar[frozenset[str]] = frozenset()
    trainable_teacher: ClassVar[bool] = False

    def __init__(self, cfg: Any, dims: Dims, num_classes: int, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.dims = dims
        self.num_classes = num_classes

    def task_ce(self, inp: KDInputs) -> Tensor:
        return F.cross_entropy(inp.s_logits, inp.y)

    def epoch_log(self) -> dict[str, float]:
        """Method-specific fields of an epoch's log record (default none)."""
        return {}

    def final_report(self, probe: FinalProbe) -> dict[str, Any]:
        """Method-specific fields of a seed's result after training (default none)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """What the loss computes, for results.json."""
        return {"method": self.name, "needs": sorted(self.needs), "trainable_teacher": self.trainable_teacher}
