"""Benchmark suites: lists of cells (dataset × method × budget × eval arch), issue 3 §9.

A cell distils/selects one set per seed and evaluates it with one fresh model of the same seed,
so "mean ± std over 3 seeds" covers both the selection and the evaluation randomness. ``full``
cells train on the whole training set (the upper bound).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

AV_DATASETS = ["av-digits", "av-digits-hard"]
CORESETS = ["random", "herding", "k-center", "forgetting"]


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

    @property
    def row_method(self) -> str:
        return self.label or self.method

    def cell_id(self, arch: str | None = None) -> str:
        b = f"{self.budget}{self.unit}" if self.budget else "full"
        tag = f"/syn_steps={self.extra['syn_steps']}" if "syn_steps" in self.extra else ""  # memory cells (vl)
        return f"{self.dataset}/{self.row_method}/{b}/{arch or self.eval_arch}{tag}"

    @property
    def id(self) -> str:
        return self.cell_id()

    @property
    def ids(self) -> list[str]:
        return [self.cell_id(a) for a in [self.eval_arch, *self.extra_archs]]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# Quick-suite audio front end: 1x32x32 log-mel instead of the default 1x64x64, 4x cheaper and about one
# point of audio-only accuracy lower on clean data (cpu-calibration.md §5); the suite must fit in 20 min.
QUICK_AV_DATA = {"n_mels": 32, "frames": 32}


def quick() -> list[Cell]:
    cells: list[Cell] = []
    for ds in AV_DATASETS:
        cells.append(Cell("quick", ds, "full", data=dict(QUICK_AV_DATA)))
        for ipc in (1, 10):
            for m in CORESETS:
                cells.append(Cell("quick", ds, m, ipc, "ipc", data=dict(QUICK_AV_DATA)))
    cells.append(Cell("quick", "emoji", "full"))
    for pairs in (100, 200):
        for m in CORESETS:
            cells.append(Cell("quick", "emoji", m, pairs, "pairs"))
    return cells


SUITES: dict[str, Callable[[], list[Cell]]] = {"quick": quick}
# suite -> function(cell, data_root) run by every cell of the suite before its work (e.g. cached expert buffers)
PREPARE: dict[str, Callable[[Cell, str | None], None]] = {}


def _register_kd() -> None:
    # the kd suite (issue 7) lives in its own module; importing it also registers its BENCHMARKS.md checks
    from . import kd_suite  # (may be partially initialised when kd_suite itself is imported first)

    SUITES["kd"] = lambda: kd_suite.kd_cells()


_register_kd()


def _register_av() -> None:
    """Issue 4: the audio-visual distillation suite ``av`` and its target check."""
    from . import av_suite

    av_suite.register()


_register_av()


def _register_vl() -> None:
    """Issue 5: the image-text distillation suite ``vl``, its expert-buffer preparation and target check."""
    from . import vl_suite

    vl_suite.register()


_register_vl()
