import json

from mmdistill.bench import runner, suites
from mmdistill.bench.render import render
from mmdistill.data.root import resolve_data_root


def _row(cell, metric, mean, **kw):
    return {"suite": "t", "dataset": "d", "method": "random", "budget": 1, "budget_unit": "ipc", "eval_arch": "convnet",
            "metric": metric, "mean": mean, "std": 0.5, "n_seeds": 3, "wall_s": 1.0, "peak_rss_mb": 10.0,
            "command": "c", "cell": cell, **kw}


def test_render_from_json_only(tmp_path):
    bdir = tmp_path / "benchmarks"
    bdir.mkdir()
    rows = [_row("a", "fused_acc", 51.234, protocol={"task": "classification", "epochs": 3}), _row("a", "audio_acc", 40.0)]
    (bdir / "t.json").write_text(json.dumps(rows))
    md = render(bdir, tmp_path / "BENCHMARKS.md").read_text()
    assert "51.23 ± 0.50" in md and "40.00 ± 0.50" in md and "mmdistill bench --suite t" in md and "epochs=3" in md


def test_quick_suite_shape():
    cells = suites.quick()
    ids = [c.id for c in cells]
    assert len(ids) == len(set(ids))
    assert "av-digits-hard/forgetting/10ipc/convnet" in ids and "emoji/k-center/200pairs/convnet" in ids
    assert sum(c.method == "full" for c in cells) == 3


def test_runner_merges_rows(tmp_path, monkeypatch):
    if not (resolve_data_root() / "fsdd").is_dir():
        import pytest

        pytest.skip("../shared/data not present")
    tiny = suites.Cell("tiny", "av-digits", "random", 1, "ipc", seeds=[0], eval={"epochs": 1, "min_steps": 5})
    monkeypatch.setitem(suites.SUITES, "tiny", lambda: [tiny])
    monkeypatch.setattr(runner, "SUITES", suites.SUITES)
    runner.run_suite("tiny", out_dir=tmp_path)
    rows = json.loads((tmp_path / "benchmarks" / "tiny.json").read_text())
    metrics = {r["metric"] for r in rows}
    assert {"fused_acc", "audio_acc", "visual_acc", "peak_rss_mb", "distill_wall_s"} <= metrics
    need = {"suite", "dataset", "method", "budget", "budget_unit", "eval_arch", "metric", "mean", "std", "n_seeds", "wall_s",
            "peak_rss_mb", "command"}
    assert all(need <= set(r) for r in rows)
    runner.run_suite("tiny", out_dir=tmp_path)  # rerun replaces, does not duplicate
    assert len(json.loads((tmp_path / "benchmarks" / "tiny.json").read_text())) == len(rows)
    assert "av-digits" in (tmp_path / "BENCHMARKS.md").read_text()
