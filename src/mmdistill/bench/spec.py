"""A benchmark cell: one (dataset, method, budget, evaluation architecture) entry of a suite.

A distillation cell distils/selects one set per synthetic seed and evaluates it with fresh models, so
"mean ± std over seeds" covers the selection and the evaluation randomness. ``full`` cells train on the whole
training set (the upper bound). A :class:`KDCell` trains one cross-modal KD student per seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Cell:
    suite: str
    dataset: str
    method: str
    budget: int | None = None
    unit: str | None = None  # "ipc" | "pairs" | None for full
    eval_arch: str = "convnet"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    # None: one set per seed, each evaluated by one model of that seed. A list: one set per entry,
    # each evaluated by one model per entry of ``seeds`` (e.g. 1 set x 3 models when sets are costly).
    syn_seeds: list[int] | None = None
    # more evaluation architectures for the same sets (cross-architecture rows without re-distilling)
    extra_archs: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    eval: dict[str, Any] = field(default_factory=dict)
    label: str | None = None  # row method name when it differs from the CLI method (ablations)
    extra: dict[str, Any] = field(default_factory=dict)  # fields copied into every row (e.g. syn_steps)
    threads: int | None = None  # intra-op threads of the cell's process (None: the machine's default)
    # audio-visual sets: also evaluate the eval_arch sets by audio-visual retrieval (metrics ``avr_*``)
    av_retrieval: bool = False
    # more evaluation protocols for the same eval_arch sets (``eval.protocol`` values, e.g. ["paper"]): rows
    # labelled ``<method>@<protocol>``, same cell
    protocols: list[str] = field(default_factory=list)

    @property
    def row_method(self) -> str:
        return self.label or self.method

    def cell_id(self, arch: str | None = None) -> str:
        b = f"{self.budget}{self.unit}" if self.budget else "full"
        tag = f"/syn_steps={self.extra['syn_steps']}" if "syn_steps" in self.extra else ""  # memory cells
        return f"{self.dataset}/{self.row_method}/{b}/{arch or self.eval_arch}{tag}"

    @property
    def id(self) -> str:
        return self.cell_id()

    @property
    def ids(self) -> list[str]:
        return [self.cell_id(a) for a in [self.eval_arch, *self.extra_archs]]

    def owns(self, cell_id: str) -> bool:
        """Whether a row id belongs to this cell under any evaluation architecture: a re-run replaces every
        architecture's rows of the cell, so none of them can describe a set other than the one just made (a run
        restricted to fewer architectures leaves the others unmeasured rather than stale)."""
        if cell_id in self.ids:
            return True
        head, _, tail = self.cell_id("\0").partition("\0")
        return (cell_id.startswith(head) and cell_id.endswith(tail) and len(cell_id) > len(head) + len(tail)
                and "/" not in cell_id[len(head):len(cell_id) - len(tail)])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class KDCell(Cell):
    """A cross-modal KD cell: ``method`` is a KD method name (or ``similarity``, the band-similarity control);
    ``params`` its loss params; ``eval`` KDRunConfig fields (e.g. student_train); ``data`` dataset params."""

    kind: str = "kd"
    teacher_modality: str = "audio"
    student_modality: str = "visual"

    def cell_id(self, arch: str | None = None) -> str:
        return f"{self.dataset}/{self.teacher_modality}->{self.student_modality}/{self.row_method}/{arch or self.eval_arch}"


def cell_from_dict(spec: dict[str, Any]) -> Cell:
    """The cell a spec describes (a :class:`KDCell` when ``kind`` is ``kd``)."""
    return KDCell(**spec) if spec.get("kind") == "kd" else Cell(**spec)
