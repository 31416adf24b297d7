"""Report pages in headless Chromium: no console errors, every section visible, audio decodes, no network,
and a non-blank screenshot. Skipped without Chromium unless MMDISTILL_REQUIRE_BROWSER=1 (``make test`` sets
it after installing Debian's ``chromium``), in which case a missing browser is a failure.

Screenshots are kept under the test's tmp dir (``report_*.png``) for a human to look at.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image
from test_report import make_av_run, make_vl_run

from mmdistill.report.browser import find_chromium, inspect_pages
from mmdistill.report.build import build_report
from mmdistill.report.compare import compare_runs
from mmdistill.report.sections import SECTION_IDS, Options

pytestmark = pytest.mark.slow  # headless browser

CHROMIUM = find_chromium()
REQUIRED = os.environ.get("MMDISTILL_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def chromium() -> str:
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("MMDISTILL_REQUIRE_BROWSER=1 but no Chromium found (apt-get install chromium)")
        pytest.skip("no Chromium on PATH (apt-get install chromium; `make test` installs it)")
    return CHROMIUM


def non_blank(png: bytes) -> tuple[float, tuple[int, int]]:
    """(grey-level std, size) of a screenshot: a blank page has std ~0."""
    im = Image.open(io.BytesIO(png)).convert("L")
    return float(np.asarray(im, dtype=np.float64).std()), im.size


def test_inspector_reports_console_errors(chromium, tmp_path):
    """The check can fail: console.error, an uncaught exception and a failed resource load are all caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><p id="a">x</p>'
                   '<img src="missing.png"><script>console.error("boom"); nope();</script></body></html>')
    (rep,) = inspect_pages([bad.as_uri()], chromium)
    text = " | ".join(rep.console_errors)
    assert "boom" in text and "nope" in text and "missing.png" in text, rep.console_errors
    assert rep.ids == {"a": True}


def test_report_pages_in_chromium(chromium, tmp_path):
    vl = build_report(make_vl_run(tmp_path))
    av = build_report(make_av_run(tmp_path), opt=Options(max_audio=3, gl_iters=8))
    cmp_page, _, _ = compare_runs([make_av_run(tmp_path / "a", "dm", 1, 40.0), make_av_run(tmp_path / "b", "dm", 2, 50.0)],
                                  tmp_path / "compare.html")
    reps = inspect_pages([vl.as_uri(), av.as_uri(), cmp_page.as_uri()], chromium)
    for name, page, rep in zip(("vl", "av", "compare"), (vl, av, cmp_page), reps):
        shot = tmp_path / f"report_{name}.png"
        shot.write_bytes(rep.screenshot)
        assert rep.console_errors == [], (page, rep.console_errors)
        assert rep.external_requests == [], rep.external_requests
        std, (w, h) = non_blank(rep.screenshot)
        assert std > 20 and w >= 1000 and h > 600, (shot, std, w, h)
    for rep, absent in zip(reps[:2], ({"audio"}, {"text", "similarity"})):  # sections not applying are omitted
        assert all(bool(rep.ids.get(sid)) == (sid not in absent) for sid in SECTION_IDS), rep.ids
        assert rep.title.startswith("mmdistill report")
    assert reps[0].media == []
    assert len(reps[1].media) == 3 and all(abs(d - 0.128) < 0.01 and err == 0 for d, err in reps[1].media), reps[1].media
    assert reps[2].ids.get("compare-plot") and reps[2].ids.get("compare-table")
