"""The package's docstrings and comments explain the code and cite papers; development history (issue or session
numbers) and section numbers of internal spec files do not belong there (history lives in git)."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mmdistill"
PATTERN = re.compile(r"\b[Ii]ssue \d+|\b[Ss]ession \d+|§ ?\d|\b[a-z-]+\.md §")


def test_no_issue_session_or_spec_section_references_in_the_package():
    hits = [f"{p.relative_to(SRC)}:{i}: {line.strip()[:80]}"
            for p in sorted(SRC.rglob("*.py")) for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if PATTERN.search(line)]
    assert not hits, "\n".join(hits[:20])


def test_the_pattern_catches_what_it_should():
    for bad in ("(issue 17)", "Session 4 measured", "spec §3.5", "av-distillation.md §7"):
        assert PATTERN.search(bad), bad
    assert not PATTERN.search("arXiv 2511.17890, Eq. 24")
