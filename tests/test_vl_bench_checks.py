"""The issue-5 target checks rendered into BENCHMARKS.md (bench/vl_suite.check_vl) read the rows honestly."""

from __future__ import annotations

from mmdistill.bench.vl_suite import MEM_STEPS, check_vl


def _r(method: str, metric: str, mean: float, std: float = 0.0, **kw) -> dict:
    return {"method": method, "metric": metric, "mean": mean, "std": std, "budget": 100, **kw}


def _rows(rm: dict[str, tuple[float, float]], cpu: dict[str, float]) -> list[dict]:
    rows = [_r(m, "r_mean", *v) for m, v in rm.items()]
    rows += [_r(m, "cpu_s_per_iter", v) for m, v in cpu.items()]
    lo, hi = MEM_STEPS
    rows += [_r("tesla-vl", "peak_rss_mb", 800.0, syn_steps=lo), _r("tesla-vl", "peak_rss_mb", 850.0, syn_steps=hi),
             _r("mtt-vl", "peak_rss_mb", 1000.0, syn_steps=lo), _r("mtt-vl", "peak_rss_mb", 2500.0, syn_steps=hi)]
    return rows


def test_chain_met_and_speed_met() -> None:
    text = "\n".join(check_vl(_rows({"repblend": (15, 1), "lors": (14, 1), "mtt-vl": (13, 1), "random": (10, 1)},
                                    {"repblend": 0.1, "lors": 1.0})))
    assert "100 pairs: **met**" in text and "failing pairs" not in text
    assert "ratio 0.100" in text and "**met** (0.100" in text
    assert "x1.06" in text and "x2.50" in text


def test_chain_missed_names_the_pair_and_whether_it_is_noise() -> None:
    text = "\n".join(check_vl(_rows({"repblend": (14.11, 2.14), "lors": (13.59, 1.09), "mtt-vl": (13.86, 1.14),
                                     "random": (10.55, 2.2)}, {"repblend": 0.3, "lors": 1.0})))
    assert "100 pairs: **MISSED**" in text
    assert "lors 13.59 <= mtt-vl 13.86 (by 0.27; within one std, 1.14)" in text
    assert "repblend 14.11 ± 2.14" in text
    assert "**MISSED** (0.300" in text
    far = "\n".join(check_vl(_rows({"repblend": (15, 0.1), "lors": (10, 0.1), "mtt-vl": (13, 0.1), "random": (9, 0.1)},
                                    {"repblend": 0.1, "lors": 1.0})))
    assert "beyond one std" in far


def test_missing_rows_are_reported_as_missing() -> None:
    text = "\n".join(check_vl([]))
    assert "missing rows" in text and "met" not in text.replace("missing", "")
