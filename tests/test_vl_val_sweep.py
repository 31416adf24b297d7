"""The val-split lr sweep (benchmarks/studies/vl_val_sweep/sweep.py): a point is distilled on train and scored on
val, the test split is never loaded, points replace their own key and the table marks the best point."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "studies" / "vl_val_sweep" / "sweep.py"


@pytest.fixture(scope="module")
def vs():
    spec = importlib.util.spec_from_file_location("study_vl_val_sweep", PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _pt(vs, method="lors", pairs=500, iterations=40, over=None, r=20.0):
    return {"method": method, "pairs": pairs, "iterations": iterations, "over": over or {}, "syn_seed": 0, "r_mean": r,
            "std": 0.5, "per_seed": [r] * 3, "distill_cpu_s": 1.0, "val_fraction": vs.VAL_FRACTION, "n_train": 10,
            "n_val": 3, "eval_seeds": vs.EVAL_SEEDS, "split": "val"}


def test_a_point_never_loads_the_test_split(vs, monkeypatch, tmp_path):
    import mmdistill.data as data
    import mmdistill.distill as distill
    import mmdistill.distill.base as base
    import mmdistill.evaluate.protocol as protocol
    import mmdistill.experts.buffers as buffers

    loaded: list[str] = []
    evaluated_on: list[str] = []

    class FakeDataset(SimpleNamespace):
        def __len__(self):
            return 5

    def fake_load(name, split, root=None, **kw):
        loaded.append(split)
        return FakeDataset(name=name, split=split, task="retrieval", kw=kw)

    class FakeMethod:
        class Config:
            pass

        def __init__(self, cfg, train, budget, seed):
            assert train.split == "train"

    def fake_eval(syn, train, test, proto):
        evaluated_on.append(test.split)
        return SimpleNamespace(metrics={"r_mean": {"mean": 1.0, "std": 0.0, "per_seed": [1.0]}})

    monkeypatch.setattr(data, "load_dataset", fake_load)
    monkeypatch.setattr(buffers, "ensure_buffer", lambda *a, **k: None)
    monkeypatch.setattr(distill, "get_method", lambda name: FakeMethod)
    monkeypatch.setattr("mmdistill.config.from_dict", lambda cls, params, where="": params)
    monkeypatch.setattr(base, "run", lambda dist, out, progress=False: "syn")
    monkeypatch.setattr(protocol, "evaluate_set", fake_eval)
    monkeypatch.setattr(protocol, "default_protocol", lambda task, **kw: kw)
    monkeypatch.setattr(vs, "val_buffer", lambda method, experts=None: ({"mode": "full"}, tmp_path))
    point = vs.run_point("lors", 100, {"lr_txt": 0.3}, iterations=2)
    assert "test" not in loaded and set(loaded) == {"train", "val"}
    assert evaluated_on == ["val"] and point["split"] == "val"
    assert vs.DATA["val_fraction"] == vs.VAL_FRACTION > 0


def test_save_replaces_the_same_point(vs, tmp_path):
    path = tmp_path / "sweep.json"
    vs.save(_pt(vs, r=1.0), path)
    vs.save(_pt(vs, over={"lr_txt": 0.1}, r=2.0), path)
    vs.save(_pt(vs, r=3.0), path)
    rows = vs.load(path)
    assert len(rows) == 2 and sorted(r["r_mean"] for r in rows) == [2.0, 3.0]


def test_table_marks_best_per_run_length(vs):
    rows = [_pt(vs, iterations=0, r=20.4), _pt(vs, r=18.9), _pt(vs, over={"lr_txt": 0.1}, r=20.7),
            _pt(vs, iterations=200, over={"lr_txt": 0.1}, r=20.2), _pt(vs, iterations=200, r=18.7)]
    lines = vs.sweep_lines(rows)
    best = [ln for ln in lines if "(best)" in ln]
    assert len(best) == 2 and all("lr_txt 0.1" in ln for ln in best)
    assert any("initialisation (no distillation)" in ln and "(best)" not in ln for ln in lines)
    assert vs.sweep_lines([]) == []


def test_committed_results_are_val_only(vs):
    rows = vs.load()
    assert rows and all(r["split"] == "val" for r in rows)


def test_an_experts_override_gets_its_own_buffer(vs):
    ex0, p0 = vs.val_buffer("lors")
    ex1, p1 = vs.val_buffer("lors", {"batch_size": 64, "epochs": 5})
    assert p0 != p1 and ex1["batch_size"] == 64 and ex1["epochs"] == 5
    assert {k: v for k, v in ex1.items() if k not in ("batch_size", "epochs")} == \
        {k: v for k, v in ex0.items() if k not in ("batch_size", "epochs")}
    assert vs.val_buffer("repblend")[0]["mode"] == "heads"


def test_table_names_the_expert_setting_and_the_set(vs):
    pt = _pt(vs, over={"experts": {"batch_size": 128, "epochs": 12}, "lr_teacher": 0.01})
    pt2 = {**_pt(vs, over={"lr_txt": 0.1}), "syn_seed": 1}
    lines = vs.sweep_lines([pt, pt2])
    assert any("experts batch_size 128 epochs 12, lr_teacher 0.01" in ln for ln in lines)
    assert any("lr_txt 0.1 (syn seed 1)" in ln for ln in lines)
