"""Config dataclasses of a cross-modal KD run (YAML -> dataclass via ``mmdistill.config.from_dict``).

A run: a teacher trained on ``teacher_modality`` of the paired training split (or loaded from the
teacher cache), a student trained from scratch on ``student_modality`` with task CE + the method's loss,
evaluated on the test split at the LAST epoch with its own (main) head, over ``seeds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class NetSpec:
    """One network and its feature taps.

    arch: a registered net, or "auto": ``mlp`` for vector inputs (e.g. 384-d MiniLM text), ``convnet`` for
        image-like inputs.
    kwargs: net options; for "auto" they are merged over the auto defaults.
    feat_tap: module path of the pooled penultimate feature (FitNet, PKD, FD-CMKD); None = the arch's
        default pre-ReLU tap (:data:`mmdistill.kd.taps.DEFAULT_TAPS`). Maps are global-average-pooled.
    mid_tap: module path of the intermediate feature C2KD's proxy reads; None = arch default.
    tap_io: "output" or "input" of the tapped modules.
    """

    arch: str = "auto"
    kwargs: dict[str, Any] = field(default_factory=dict)
    feat_tap: str | None = None
    mid_tap: str | None = None
    tap_io: Literal["output", "input"] = "output"


@dataclass
class TrainSpec:
    """Optimiser and schedule. ``poly`` is the FD-CMKD/C2KD per-epoch 1e-4 + (lr - 1e-4)(1 - e/E)^0.9.

    poly_update: when the poly rate of epoch e takes effect. "epoch_start" (FD-CMKD's code: set before the
        epoch's first step); "after_step" (C2KD's code: set after every optimiser step, so each epoch's first
        step still runs at the previous epoch's rate and the very first step at ``lr``).
    """

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    epochs: int = 12
    lr_schedule: Literal["cosine", "poly", "constant"] = "cosine"
    poly_update: Literal["epoch_start", "after_step"] = "epoch_start"
    augment: bool = True


@dataclass
class KDRunConfig:
    """``mmdistill kd`` run config (configs/kd/*.yaml).

    method: a registered KD method (``no-kd``, ``kd``, ``dkd``, ``dist``, ``fitnet``, ``pkd``, ``c2kd``,
        ``fd-cmkd``); variants and controls are configs (``configs/kd/variants/``).
    params: the method's Config fields.
    data: dataset loader params.
    label: "label" (the dataset's labels; emoji: group) or a key of ``extra_labels`` (e.g. "subgroup").
    teacher / student: networks; teacher_train / student_train: their optimisation.
    teacher_cache: reuse/store trained teachers under cache_dir()/teachers/.
    seeds: one teacher and one student per seed; metrics are mean +- std over seeds.
    selection: "last" (the last epoch; never best-on-test). Heads: main head only.
    protocol: "common" (the train specs as configured) or "paper" (the cross-modal KD papers' SGD + poly recipe
        for teacher and student, epochs and augmentation as configured; :mod:`mmdistill.kd.protocol`).
    """

    dataset: str = "av-digits-hard"
    teacher_modality: str = "audio"
    student_modality: str = "visual"
    method: str = "no-kd"
    params: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    label: str = "label"
    teacher: NetSpec = field(default_factory=NetSpec)
    student: NetSpec = field(default_factory=NetSpec)
    teacher_train: TrainSpec = field(default_factory=TrainSpec)
    student_train: TrainSpec = field(default_factory=TrainSpec)
    teacher_cache: bool = True
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "cpu"
    eval_batch_size: int = 512
    selection: Literal["last"] = "last"
    protocol: Literal["common", "paper"] = "common"
