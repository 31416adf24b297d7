"""The studies under benchmarks/studies/ run against the package: their helpers do what their READMEs claim."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "benchmarks" / "studies"


def _load(rel: str):
    path = STUDIES / rel
    spec = importlib.util.spec_from_file_location(f"study_{path.parent.name}_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_every_study_has_a_readme_with_question_command_answer():
    dirs = [d for d in STUDIES.iterdir() if d.is_dir()]
    assert len(dirs) >= 5
    for d in dirs:
        text = (d / "README.md").read_text(encoding="utf-8")
        parts = ["**Question.**", "**Answer.**"] + (["**Command"] if list(d.glob("*.py")) else [])
        for part in parts:
            assert part in text, (d.name, part)


def test_standardise_matches_the_real_moments_and_keeps_the_order():
    probe = _load("av_bn_probe/probe.py")
    g = torch.Generator().manual_seed(0)
    syn = {"audio": 5 + 3 * torch.randn(10, 1, 8, 8, generator=g), "visual": torch.rand(10, 1, 8, 8, generator=g)}
    real = {"audio": torch.randn(50, 1, 8, 8, generator=g), "visual": 0.5 + 0.2 * torch.randn(50, 1, 8, 8, generator=g)}
    out = probe.standardise(syn, real)
    for m in syn:
        assert torch.allclose(out[m].mean(), real[m].mean(), atol=1e-5)
        assert torch.allclose(out[m].std(), real[m].std(), atol=1e-5)
        assert torch.equal(out[m].flatten().argsort(), syn[m].flatten().argsort())  # affine, increasing


def test_probe_table_renders_every_variant_of_the_committed_results():
    probe = _load("av_bn_probe/probe.py")
    res = json.loads((STUDIES / "av_bn_probe" / "results.json").read_text(encoding="utf-8"))
    lines = probe.probe_lines(res)
    for name, e in res["sets"].items():
        row = next(line for line in lines if line.startswith(f"| {name} |"))
        for v in probe.EVAL_VARIANTS:
            assert f"{e['fused_acc'][v]['mean']:.1f}" in row
    assert probe.probe_lines({}) == []


def test_diagnostic_scores_rank_a_class_mean_set_above_noise():
    from av_fixtures import tiny_av
    from mmdistill.nets import create_net

    diag = _load("davdd_diagnose/diagnose.py")
    train, test = tiny_av("train"), tiny_av("test", per_class=10)
    torch.manual_seed(0)
    nets = [{m: create_net("convnet", tuple(train.tensors[m].shape[1:]), num_classes=0, width=8, depth=2, norm="instance",
                           final_pool=(2, 2)) for m in ("audio", "visual")}]
    means = {m: [train.tensors[m][train.labels == c].mean(0, keepdim=True) for c in range(4)] for m in ("audio", "visual")}
    noise = {m: [torch.randn_like(t) for t in ts] for m, ts in means.items()}
    s = diag._scores(nets, train, test, {"means": means, "noise": noise})
    assert s["means"]["gap"] < s["noise"]["gap"] and s["means"]["ncm_acc"] > s["noise"]["ncm_acc"]


def test_calibration_cells_are_the_davdd_cell_plus_their_overrides():
    """(The overrides are fields of the DAVDD of commit 0384fa3; here only the cell construction is checked.)"""
    from mmdistill.bench.suite import load_suite

    cal = _load("davdd_calibration/calibrate.py")
    base = next(c for c in load_suite("av", ROOT / "benchmarks" / "suites", ROOT / "configs").cells
                if c.dataset == "av-digits-hard" and c.budget == 1 and c.row_method == "davdd")
    runs = json.loads((STUDIES / "davdd_calibration" / "results.json").read_text(encoding="utf-8"))["runs"]
    assert cal.calibration_cell("base").params == base.params
    for r in runs:
        cell = cal.calibration_cell(r["name"])
        for k, v in r["overrides"].items():
            assert (cell.params[k] == v) if not isinstance(v, dict) else all(cell.params[k][kk] == vv for kk, vv in v.items())
        assert cell.syn_seeds == [0] and cell.extra_archs == []
    with pytest.raises(SystemExit, match="unknown run"):
        cal.calibration_cell("nope")


def test_convergence_curve_points_and_plateau():
    cv = _load("convergence/curves.py")
    log = [{"event": "start", "it": -1, "eval": {"val_fused_acc": 20.0}},
           {"it": 0, "loss": 3.0}, {"it": 1, "loss": 2.0, "eval": {"val_fused_acc": 30.0}},
           {"it": 2, "loss": 1.5}, {"it": 3, "loss": 1.0, "eval": {"val_fused_acc": 41.5}},
           {"event": "done", "it": 6, "eval": {"val_fused_acc": 42.0}}]
    pts = cv.curve_points(log, "val_fused_acc")
    assert pts["iters"] == [0, 2, 4, 6] and pts["val"] == [20.0, 30.0, 41.5, 42.0]
    assert cv.loss_points(log, 2) == {"iters": [2, 4], "loss": [2.5, 1.25]}
    rec = {"curve": "c", "cpu_s": 1.0, "overrides": [], **pts}
    s = cv.summarise([rec], tol=1.0)["c"]
    assert (s["start"], s["best"], s["best_at"], s["last"], s["plateau_at"]) == (20.0, 42.0, 6, 42.0, 4)
    assert cv.summarise([rec], tol=0.1)["c"]["plateau_at"] == 6
    assert set(cv.CURVES) and all((ROOT / "configs" / c).is_file() for c, _ in cv.CURVES.values())


def test_expert_convergence_plateau_is_the_first_epoch_near_the_best():
    study = _load("expert_convergence/curves.py")
    curve = [{"epoch": e, "val_infonce": v} for e, v in enumerate([7.0, 6.5, 6.05, 6.2, 6.0, 6.3])]
    assert study.plateau(curve, "val_infonce", 0.1, True) == 2
    assert study.plateau(curve, "val_infonce", 0.01, True) == 4
    assert study.plateau(curve, "val_infonce", 0.1, False) == 0
