"""``build_report(run_dir)``: one self-contained ``report.html`` per run (+ the figures under ``plots/``).

A section that fails unexpectedly is replaced by a warning naming the exception, so one broken piece
never hides the rest of the page.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import MMDistillError
from ..io import atomic_write_bytes
from .html import Section, esc, page, write_page
from .load import MISMATCH, RunData, load_run
from .sections import BUILDERS, SECTION_IDS, Figures, Options

REPORT_FILE = "report.html"
PLOTS_DIR = "plots"


def render_run(rd: RunData, opt: Options | None = None) -> tuple[str, Figures]:
    """The page text and the figures it embeds."""
    opt = opt or Options()
    figs = Figures()
    sections: list[Section] = []
    for sid, build in zip(SECTION_IDS, BUILDERS):
        try:
            sec = build(rd, opt, figs)
            if sec is not None:  # None: the section does not apply to this set's modalities
                sections.append(sec)
        except Exception as e:  # noqa: BLE001 - reported in the page instead of aborting the report
            sections.append(Section(sid, sid.capitalize(), f'<p class="warn">This section failed: {esc(type(e).__name__)}: {esc(e)}</p>'))
    title = f"mmdistill report: {rd.method} on {rd.dataset_name}"
    return page(title, str(rd.path), sections), figs


def build_report(run_dir: str | Path, out: str | Path | None = None, *, data_root: str | None = None,
                 opt: Options | None = None, load_data: bool = True, save_plots: bool = True) -> Path:
    """Write ``out`` (default ``RUN_DIR/report.html``) atomically; PNGs also go to ``RUN_DIR/plots/``."""
    rd = load_run(run_dir, data_root=data_root, load_data=load_data)
    stale = [v[len(MISMATCH):] for v in rd.results_errors.values() if v.startswith(MISMATCH)]
    if stale:  # a score next to a set it was not measured on must not be shown
        raise MMDistillError(f"{rd.path}: " + "; ".join(stale))
    text, figs = render_run(rd, opt)
    out_path = Path(out) if out else rd.path / REPORT_FILE
    if save_plots:
        try:
            for name, png in figs.pngs.items():
                atomic_write_bytes(rd.path / PLOTS_DIR / f"{name}.png", png)
        except OSError as e:  # a read-only run directory still gets its report elsewhere
            print(f"mmdistill report: warning: figures not saved under {rd.path / PLOTS_DIR} ({e}); "
                  "the page embeds them anyway", file=sys.stderr)
    try:
        return write_page(out_path, text)
    except OSError as e:
        raise MMDistillError(f"{out_path}: cannot write the report ({e}); choose another --out") from None
