"""`make demo` shows distillation working: DM at 1 pair per class beats a same-size random subset on av-digits,
evaluated next to the full training set, with the report page written (end to end, from a cold cache)."""

from __future__ import annotations

import re
import time

import pytest

from mmdistill import demo
from mmdistill.data.root import resolve_data_root


def test_summary_lines_compare_method_random_and_full_data():
    m = {"fused_acc": {"mean": 80.0, "std": 1.0}}
    b = {"fused_acc": {"mean": 40.0, "std": 2.0}}
    f = {"fused_acc": {"mean": 100.0, "std": 0.0}}
    one, two = demo.summary(m, b, f, 10, 2700)
    assert "DM 10 pairs 80.00 ± 1.00" in one and "random 10 pairs 40.00 ± 2.00" in one and "full data 2700 pairs 100.00" in one
    assert "0.37% of the training pairs" in two and "DM 80.0%" in two and "random subset 40.0%" in two


@pytest.mark.slow
@pytest.mark.skipif(not (resolve_data_root() / "fsdd").is_dir(), reason="../shared/data not present")
def test_demo_end_to_end_from_a_cold_cache(tmp_path, monkeypatch, capsys):
    """Measured 2026-12-05 on the 2-core box (load < 1, one thread): 157 s wall, 153 CPU-s, cold cache."""
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    assert demo.main() == 0
    wall = time.perf_counter() - t0
    out = capsys.readouterr().out.strip().splitlines()
    first, second, third = out[-3:]
    dm, rnd, full = (float(x) for x in re.findall(r"pairs ([0-9.]+) ±", first))
    assert dm > rnd + 10 and full > dm, first
    assert re.search(r"DM [0-9.]+%, random subset [0-9.]+%", second)
    page = tmp_path / demo.OUT / "report.html"
    assert third.startswith(f"report: {page}") and page.is_file()
    html = page.read_text()
    assert "% of full retained" in html and "random subset, same size" in html
    print(f"demo wall {wall:.0f} s")
