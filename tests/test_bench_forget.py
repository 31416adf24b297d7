"""`mmdistill bench --forget/--prune`: rows of retired cells or of a method version that no longer exists are
removed through the CLI (never by hand), and the page is re-rendered without them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mmdistill.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]


def _row(cell: str, mean: float) -> dict:
    ds, method, budget, arch = cell.split("/")
    return {"suite": "av", "dataset": ds, "method": method, "budget": int(budget[:-3]), "budget_unit": "ipc",
            "eval_arch": arch, "n_seeds": 3, "n_sets": 1, "wall_s": 1.0, "peak_rss_mb": 1.0, "command": "",
            "cell": cell, "metric": "fused_acc", "mean": mean, "std": 1.0, "per_seed": [mean] * 3, "protocol": {}}


def test_forget_and_prune_remove_only_the_named_rows(tmp_path, capsys):
    shutil.copytree(ROOT / "benchmarks" / "suites", tmp_path / "benchmarks" / "suites")
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    cells = ["av-digits/dm/1ipc/convnet", "av-digits/davdd/1ipc/convnet", "av-digits/davdd-retired/10ipc/convnet"]
    path = tmp_path / "benchmarks" / "av.json"
    path.write_text(json.dumps([_row(c, 50.0 + i) for i, c in enumerate(cells)]))
    assert cli_main(["bench", "--suite", "av", "--out", str(tmp_path), "--prune"]) == 0
    assert [r["cell"] for r in json.loads(path.read_text())] == cells[:2]
    assert "davdd-retired" in capsys.readouterr().out
    assert cli_main(["bench", "--suite", "av", "--out", str(tmp_path), "--forget", "/davdd/"]) == 0
    assert [r["cell"] for r in json.loads(path.read_text())] == cells[:1]
    page = (tmp_path / "BENCHMARKS.md").read_text()
    assert "| dm |" in page and "| davdd |" not in page
