"""A benchmark cell evaluates the same sets under extra protocols: rows ``<method>@paper`` (each paper's own
evaluation learner) and, for audio-visual sets, audio-visual retrieval rows ``avr_*`` - from the same cell."""

from __future__ import annotations

import pytest
from data_fixtures import need_shared

from mmdistill.bench.distill_cell import run_distill_cell
from mmdistill.bench.spec import Cell


@pytest.mark.slow
def test_paper_protocol_and_av_retrieval_rows_come_from_the_same_sets():
    root = need_shared()
    cell = Cell("t", "av-digits", "random", 1, "ipc", seeds=[0], data={"n_mels": 32, "frames": 32},
                eval={"epochs": 1, "min_steps": 10}, av_retrieval=True, protocols=["paper"])
    rows = run_distill_cell(cell, str(root))
    by = {(r["method"], r["metric"]): r for r in rows}
    assert {r["cell"] for r in rows} == {"av-digits/random/1ipc/convnet"}
    common, paper = by[("random", "fused_acc")], by[("random@paper", "fused_acc")]
    assert common["protocol"].get("protocol", "common") == "common"
    assert paper["protocol"]["protocol"] == "paper" and paper["n_seeds"] == 1
    assert {"avr_r_mean", "avr_a2i@1", "avr_i2a@1", "avr_chance@1"} <= {m for (meth, m) in by if meth == "random"}
    avr = by[("random", "avr_r_mean")]
    assert avr["protocol"]["task"] == "av-retrieval" and 0.0 <= avr["mean"] <= 100.0
    assert not any(m.startswith("avr_") for (meth, m) in by if meth == "random@paper")
