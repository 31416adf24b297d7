"""``mmdistill bench``: a suite file runs end to end, rows merge, a rerun replaces its rows; clear errors."""

import json

import pytest

from mmdistill.bench import runner
from mmdistill.bench.suite import find_dirs, load_suite
from mmdistill.data.root import resolve_data_root
from mmdistill.errors import ConfigError

TINY = """
name: tiny
groups:
  - datasets: [av-digits]
    budgets: [1]
    unit: ipc
    methods: [random]
    seeds: [0]
    eval: {epochs: 1, min_steps: 5}
"""


def _repo(tmp_path):
    (tmp_path / "benchmarks" / "suites").mkdir(parents=True)
    (tmp_path / "configs").mkdir()
    (tmp_path / "benchmarks" / "suites" / "tiny.yaml").write_text(TINY)
    return tmp_path


@pytest.mark.slow  # runs a real cell in its own process
def test_runner_merges_rows(tmp_path):
    if not (resolve_data_root() / "fsdd").is_dir():
        pytest.skip("../shared/data not present")
    root = _repo(tmp_path)
    runner.run_suite("tiny", out_dir=root)
    rows = json.loads((root / "benchmarks" / "tiny.json").read_text())
    metrics = {r["metric"] for r in rows}
    assert {"fused_acc", "audio_acc", "visual_acc", "peak_rss_mb", "distill_wall_s"} <= metrics
    need = {"suite", "dataset", "method", "budget", "budget_unit", "eval_arch", "metric", "mean", "std", "n_seeds", "wall_s",
            "peak_rss_mb", "command"}
    assert all(need <= set(r) for r in rows)
    runner.run_suite("tiny", out_dir=root)  # rerun replaces, does not duplicate
    assert len(json.loads((root / "benchmarks" / "tiny.json").read_text())) == len(rows)
    md = (root / "BENCHMARKS.md").read_text()
    fused = next(r for r in rows if r["metric"] == "fused_acc")
    assert "## av-digits" in md and f"{fused['mean']:.2f}" in md
    assert (root / "benchmarks" / "tiny.csv").is_file()


def test_missing_directories_and_unknown_suites_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="suites directory .* not found.*--suites"):
        find_dirs(root=tmp_path)
    root = _repo(tmp_path)
    with pytest.raises(ConfigError, match="unknown suite 'nope'; known: tiny"):
        load_suite("nope", root / "benchmarks" / "suites", root / "configs")
    with pytest.raises(ConfigError, match="--only .* matches no cell"):
        runner.run_suite("tiny", out_dir=root, only=["zzz"])


def test_unknown_group_keys_are_refused(tmp_path):
    root = _repo(tmp_path)
    (root / "benchmarks" / "suites" / "bad.yaml").write_text("groups:\n  - methods: [random]\n    budget: [1]\n")
    with pytest.raises(ConfigError, match=r"unknown keys \['budget'\]"):
        load_suite("bad", root / "benchmarks" / "suites", root / "configs")


def test_expert_cost_rows_describe_the_buffer_read(tmp_path):
    import math
    import sys
    from pathlib import Path
    from types import SimpleNamespace

    sys.path.insert(0, str(Path(__file__).parent))
    from vl_fixtures import experts_cfg, tiny_retrieval

    from mmdistill.bench.distill_cell import _experts_cost
    from mmdistill.config import from_dict
    from mmdistill.experts.buffers import ExpertConfig, train_experts

    ds = tiny_retrieval()
    buf = train_experts(ds, from_dict(ExpertConfig, experts_cfg("full", encoder_init="random")), tmp_path / "b",
                        progress=False)
    cost = _experts_cost(SimpleNamespace(buffer=buf))
    assert cost["experts_n"] == 2 and cost["experts_wall_s"] > 0
    assert cost["experts_wall_s_per_trajectory"] == cost["experts_wall_s"] / 2
    size = sum(f.stat().st_size for f in buf.experts) / 2 / 2**20
    assert math.isclose(cost["experts_mb_per_trajectory"], size)
    assert math.isclose(cost["experts_chance_loss"], math.log(16)) and math.isfinite(cost["experts_final_loss"])
    assert _experts_cost(SimpleNamespace()) is None  # methods without a buffer report nothing
