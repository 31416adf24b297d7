"""Bench rows merge under a lock: a concurrent writer's rows survive (runner.merge_rows)."""

import json

from mmdistill.bench.runner import load_rows, merge_rows


def test_merge_keeps_rows_written_by_another_process(tmp_path):
    path = tmp_path / "benchmarks" / "s.json"
    merge_rows(path, ["a"], [{"cell": "a", "v": 1}])
    # another bench process adds cell b meanwhile
    path.write_text(json.dumps(load_rows(path) + [{"cell": "b", "v": 2}]))
    merge_rows(path, ["a"], [{"cell": "a", "v": 3}])
    rows = {r["cell"]: r["v"] for r in load_rows(path)}
    assert rows == {"a": 3, "b": 2}
