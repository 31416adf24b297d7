"""The val-split lr sweep's bookkeeping (bench/vl_val_sweep.py; issue 5): points replace their own key, the
table marks the best point per run length and never reads the test split."""

from mmdistill.bench import vl_val_sweep as vs


def _pt(method="lors", pairs=500, iterations=40, over=None, r=20.0):
    return {"method": method, "pairs": pairs, "iterations": iterations, "over": over or {}, "syn_seed": 0, "r_mean": r,
            "std": 0.5, "per_seed": [r] * 3, "distill_cpu_s": 1.0, "val_fraction": vs.VAL_FRACTION, "n_train": 10,
            "n_val": 3, "eval_seeds": vs.EVAL_SEEDS, "split": "val"}


def test_save_replaces_the_same_point(tmp_path):
    path = tmp_path / "sweep.json"
    vs.save(_pt(r=1.0), path)
    vs.save(_pt(over={"lr_txt": 0.1}, r=2.0), path)
    vs.save(_pt(r=3.0), path)
    rows = vs.load(path)
    assert len(rows) == 2 and sorted(r["r_mean"] for r in rows) == [2.0, 3.0]


def test_table_marks_best_per_run_length():
    rows = [_pt(iterations=0, r=20.4), _pt(r=18.9), _pt(over={"lr_txt": 0.1}, r=20.7),
            _pt(iterations=200, over={"lr_txt": 0.1}, r=20.2), _pt(iterations=200, r=18.7)]
    lines = vs.sweep_lines(rows)
    assert "the test split is not used" in lines[0]
    best = [ln for ln in lines if "(best)" in ln]
    assert len(best) == 2 and all("lr_txt 0.1" in ln for ln in best)
    assert any("initialisation (no distillation)" in ln and "(best)" not in ln for ln in lines)
    assert vs.sweep_lines([]) == []
