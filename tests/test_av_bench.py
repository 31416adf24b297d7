"""Benchmark suite ``av`` (issue 4): its cells and the rendered target check."""

from mmdistill.bench.av_suite import ABLATIONS, EXTRA_ARCHS, check_av
from mmdistill.bench.render import CHECKS
from mmdistill.bench.suites import SUITES


def test_suite_is_registered_with_required_rows():
    assert "av" in SUITES and check_av in CHECKS["av"]
    cells = SUITES["av"]()
    rows = {(c.dataset, c.row_method, c.budget) for c in cells}
    for ds in ("av-digits", "av-digits-hard"):
        assert (ds, "full", None) in rows
        for ipc in (1, 10, 20):
            for m in ["random", "herding", "dm", "avdd", "dm-avdd-lr", "davdd", *ABLATIONS]:
                assert (ds, m, ipc) in rows, (ds, m, ipc)
    by_label = {c.row_method: c for c in cells if c.dataset == "av-digits-hard" and c.budget == 1}
    assert by_label["dm-avdd-lr"].method == "dm"
    assert by_label["dm-avdd-lr"].params["lr_audio"] == 21 * by_label["dm"].params["lr_audio"] == 21 * by_label["avdd"].params["lr_audio"]
    assert by_label["davdd-no-private"].params["use_private"] is False
    assert by_label["davdd-random-nets"].params["bank"]["pretrained"] is False
    assert by_label["davdd"].extra_archs == EXTRA_ARCHS
    assert len({c.id for c in cells}) == len(cells)  # ids unique, so --only can address each


def _row(ds, method, budget, mean, std=1.0, metric="fused_acc"):
    return {"dataset": ds, "method": method, "budget": budget, "budget_unit": "ipc" if method != "full" else "pairs",
            "eval_arch": "convnet", "metric": metric, "mean": mean, "std": std}


def test_check_reports_holds_and_misses_with_margins():
    rows = [_row("av-digits-hard", m, 1, v) for m, v in
            [("davdd", 40.0), ("avdd", 35.0), ("dm", 35.0), ("herding", 30.0), ("random", 20.0)]]
    rows += [_row("av-digits-hard", "davdd", 10, 60.0), _row("av-digits-hard", "full", 2700, 80.0)]
    text = "\n".join(check_av(rows))
    assert "→ **holds**; margins" in text and "avdd − dm = +0.00 (holds)" in text
    assert "75.0 % retained" in text and "margin -15.0 points) → **MISSED**" in text
    rows[0] = _row("av-digits-hard", "davdd", 1, 34.0)
    text = "\n".join(check_av(rows))
    assert "davdd − avdd = -1.00 (MISSED)" in text and "**MISSED**; margins" in text
    assert "not evaluated" in "\n".join(check_av([]))


def test_check_reports_the_speed_target():
    rows = [_row("av-digits-hard", "davdd", 10, 60.0), _row("av-digits-hard", "davdd", 10, 300.0, 0.0, "distill_wall_s"),
            _row("av-digits-hard", "dm", 10, 0.5, 0.0, "s_per_iter"), _row("av-digits-hard", "davdd", 10, 3.0, 0.0, "s_per_iter")]
    text = "\n".join(check_av(rows))
    assert "DAVDD IPC 10 on av-digits-hard: distillation 300 s wall to the reported 60.00 % fused (limit 900 s" in text
    assert "→ **holds**" in text and "dm IPC 10 0.50" in text and "davdd IPC 10 3.00" in text
    assert "Speed, quick-config DAVDD IPC 10 on av-digits in ≤ 15 min: **not evaluated**" in text
    rows[1] = _row("av-digits-hard", "davdd", 10, 901.0, 0.0, "distill_wall_s")
    assert "(limit 900 s; load nan; includes the bank training when the bank was not cached) → **MISSED**" in "\n".join(check_av(rows))


def test_calibration_cells_are_the_davdd_cell_plus_their_overrides():
    from mmdistill.bench.av_suite import CALIBRATION, calibration_cell, calibration_lines
    from mmdistill.config import from_dict
    from mmdistill.distill import get_method

    cells = {c.row_method: c for c in SUITES["av"]() if c.dataset == "av-digits-hard" and c.budget == 1}
    assert calibration_cell("base").params == cells["davdd"].params
    cls = get_method("davdd")
    for name, (over, *_rest) in CALIBRATION.items():
        cell = calibration_cell(name)
        cfg = from_dict(cls.Config, cell.params, where=name)  # every override is a real config field
        for k, v in over.items():
            assert (cell.params[k] == v) if not isinstance(v, dict) else all(cell.params[k][kk] == vv for kk, vv in v.items())
        assert cell.syn_seeds == [0] and cell.extra_archs == [] and cfg.iterations == cells["davdd"].params["iterations"]
    text = "\n".join(calibration_lines([_row("av-digits-hard", "dm", 1, 35.0)]))
    assert "dm 35.00 ± 1.00" in text and "| base | `{}` |" in text and "avdd n/a" in text


def test_speed_line_reports_cpu_seconds_when_recorded():
    rows = [_row("av-digits", "davdd", 10, 90.0), _row("av-digits", "davdd", 10, 300.0, 0.0, "distill_wall_s"),
            _row("av-digits", "davdd", 10, 120.0, 0.0, "distill_cpu_s"), _row("av-digits", "dm", 10, 0.5, 0.0, "s_per_iter"),
            _row("av-digits", "dm", 10, 0.4, 0.0, "cpu_s_per_iter")]
    text = "\n".join(check_av(rows))
    assert "distillation 300 s wall, 120 CPU s to the reported 90.00 % fused" in text and "dm IPC 10 0.50 (0.40 CPU)" in text


def test_ipc10_line_locates_the_modality_davdd_loses():
    rows = [_row("av-digits-hard", "full", 2700, 80.0)]
    for m, (f, a, v) in {"herding": (57.0, 43.0, 38.0), "davdd": (30.0, 19.0, 39.0), "davdd-no-private": (54.0, 40.0, 40.0)}.items():
        rows += [_row("av-digits-hard", m, 10, f), _row("av-digits-hard", m, 10, a, metric="audio_acc"),
                 _row("av-digits-hard", m, 10, v, metric="visual_acc")]
    text = "\n".join(check_av(rows))
    assert "herding 57.0/43.0/38.0, davdd 30.0/19.0/39.0, davdd-no-private 54.0/40.0/40.0" in text
    assert "Best DAVDD variant: davdd-no-private (54.0 = 67.5 % of full); davdd moves audio -24.0 and visual +1.0" in text


def test_target_chain_cells_distil_three_sets():
    cells = [c for c in SUITES["av"]() if c.budget == 1 and c.row_method in ("dm", "avdd", "dm-avdd-lr", "davdd")]
    for c in cells:
        assert c.syn_seeds == ([0, 1, 2] if c.dataset == "av-digits-hard" else [0]), c.id


def test_bank_row_is_rendered_in_the_speed_lines():
    from mmdistill.bench.av_suite import bank_cell_id

    rows = [_row("av-digits-hard", "davdd", 10, 60.0), _row("av-digits-hard", "davdd", 10, 50.0, 0.0, "distill_wall_s"),
            _row("av-digits-hard", "davdd", 10, 40.0, 0.0, "distill_cpu_s")]
    for metric, v in [("bank_encoders_cpu_s", 30.0), ("bank_decouplers_cpu_s", 20.0), ("bank_total_cpu_s", 50.0),
                      ("bank_total_wall_s", 55.0)]:
        rows.append({**_row("av-digits-hard", "davdd-bank", 2700, v, 0.0, metric), "budget_unit": "pairs",
                     "bank": {"pairs": 4}, "cell": bank_cell_id("av-digits-hard")})
    text = "\n".join(check_av(rows))
    assert "4 encoder pairs 30 CPU s + decouplers 20 CPU s = 50 CPU s (55 s wall" in text
    assert "cold DAVDD IPC 10 = bank + distillation 90 CPU s" in text


def test_diagnostic_scores_rank_a_class_mean_set_above_noise():
    import torch
    from av_fixtures import NET, tiny_av
    from mmdistill.bench.av_diagnose import _scores
    from mmdistill.nets import create_net

    train, test = tiny_av("train"), tiny_av("test", per_class=10)
    torch.manual_seed(0)
    nets = [{m: create_net("convnet", tuple(train.tensors[m].shape[1:]), num_classes=0, width=8, depth=2, norm="instance",
                           final_pool=(2, 2)) for m in ("audio", "visual")}]
    means = {m: [train.tensors[m][train.labels == c].mean(0, keepdim=True) for c in range(4)] for m in ("audio", "visual")}
    noise = {m: [torch.randn_like(t) for t in ts] for m, ts in means.items()}
    s = _scores(nets, train, test, {"means": means, "noise": noise})
    assert s["means"]["gap"] < s["noise"]["gap"] and s["means"]["ncm_acc"] > s["noise"]["ncm_acc"]


def test_cross_arch_line_lists_each_method_and_what_is_missing():
    rows = []
    for a in ["convnet", *EXTRA_ARCHS]:
        rows.append({**_row("av-digits-hard", "davdd", 10, 30.0), "eval_arch": a})
    rows.append(_row("av-digits-hard", "dm", 10, 60.0))
    text = "\n".join(check_av(rows))
    assert "Cross-architecture, av-digits-hard IPC 10, fused (convnet / lenet / alexnet / vgg11 / resnet18): davdd 30.0 / 30.0" in text
    assert "Not evaluated cross-arch: random, herding, dm, avdd, dm-avdd-lr." in text


def test_cross_arch_line_flags_mixed_set_counts():
    rows = [{**_row("av-digits-hard", "dm", 1, 30.0), "eval_arch": a, "n_sets": 3 if a == "convnet" else 1}
            for a in ["convnet", *EXTRA_ARCHS]]
    assert "Synthetic-set counts differ across archs for dm" in "\n".join(check_av(rows))


def test_cross_arch_line_flags_mixed_thread_counts():
    from mmdistill.bench.av_suite import _cross_arch_lines

    rows = [{**_row("av-digits", "dm", 1, 50.0), "eval_arch": a, "threads": 1 if a == "convnet" else 2}
            for a in ["convnet", *EXTRA_ARCHS]]
    line = " ".join(_cross_arch_lines(rows))
    assert "different intra-op thread counts" in line and "dm" in line
    same = [{**r, "threads": 1} for r in rows]
    assert "thread counts" not in " ".join(_cross_arch_lines(same))
