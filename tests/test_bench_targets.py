"""Targets read the rows honestly: met, missed and missing are decided by the numbers."""

from mmdistill.bench.targets import Rows, check_target


def _r(method, metric, mean, std=1.0, budget=1, dataset="d", **kw):
    return {"dataset": dataset, "method": method, "metric": metric, "mean": mean, "std": std, "budget": budget,
            "eval_arch": "convnet", "n_seeds": 3, **kw}


CHAIN = {"name": "chain", "dataset": "d", "kind": "order", "metric": "acc", "budget": 1,
         "chain": ["a", ">", "b", "≥", "c"]}


def test_order():
    rows = [_r("a", "acc", 40.0), _r("b", "acc", 35.0), _r("c", "acc", 35.0)]
    value, ok = check_target(CHAIN, Rows(rows))
    assert ok is True and value == "a 40.00 ± 1.00 > b 35.00 ± 1.00 ≥ c 35.00 ± 1.00"
    rows[0] = _r("a", "acc", 35.0)
    assert check_target(CHAIN, Rows(rows))[1] is False
    assert check_target(CHAIN, Rows(rows[:2])) == ("missing rows: c", None)
    other = [_r("a", "acc", 40.0, dataset="e"), *rows[1:]]  # rows of another dataset are not read
    assert check_target(CHAIN, Rows(other))[1] is None


def test_retention_and_max():
    t = {"name": "r", "dataset": "d", "kind": "retention", "method": "a", "metric": "acc", "budget": 10, "min": 0.9}
    rows = [_r("a", "acc", 72.0, budget=10), _r("full", "acc", 80.0, budget=2700)]
    assert check_target(t, Rows(rows)) == ("72.00 ± 1.00 / full 80.00 ± 1.00 = 90.0 %", True)
    rows[0] = _r("a", "acc", 71.9, budget=10)
    assert check_target(t, Rows(rows))[1] is False
    m = {"name": "m", "dataset": "d", "kind": "max", "select": {"method": "a", "metric": "acc", "budget": 10}, "max": 71.9}
    assert check_target(m, Rows(rows))[1] is True


def test_ratio_within_std_and_gain():
    rows = [_r("a", "t", 1.0), _r("b", "t", 10.0), _r("a", "m", 5.0, syn_steps=20), _r("a", "m", 4.0, syn_steps=5)]
    ratio = {"name": "q", "dataset": "d", "kind": "ratio", "num": {"method": "a", "metric": "t"},
             "den": {"method": "b", "metric": "t"}, "max": 0.1}
    assert check_target(ratio, Rows(rows))[1] is True
    assert check_target({**ratio, "max": 0.09}, Rows(rows))[1] is False
    grow = {"name": "g", "dataset": "d", "kind": "ratio", "num": {"method": "a", "metric": "m", "syn_steps": 20},
            "den": {"method": "a", "metric": "m", "syn_steps": 5}, "min": 1.2}
    assert check_target(grow, Rows(rows))[1] is True
    w = {"name": "w", "dataset": "d", "kind": "within_std", "a": {"method": "a", "metric": "t"},
         "b": {"method": "b", "metric": "t"}}
    assert check_target(w, Rows(rows))[1] is False
    assert check_target(w, Rows([_r("a", "t", 9.0), _r("b", "t", 10.0)]))[1] is True
    g = {"name": "k", "kind": "gain_any", "method": "fd", "base": "no", "metric": "s", "min": 3.0}
    kd = [_r("no", "s", 50.0, teacher_modality="x", student_modality="y"),
          _r("fd", "s", 52.0, teacher_modality="x", student_modality="y"),
          _r("no", "s", 40.0, teacher_modality="y", student_modality="x"),
          _r("fd", "s", 43.0, teacher_modality="y", student_modality="x")]
    value, ok = check_target(g, Rows(kd))
    assert ok is True and "+2.00" in value and "+3.00" in value
    kd[3] = _r("fd", "s", 42.9, teacher_modality="y", student_modality="x")
    assert check_target(g, Rows(kd))[1] is False
    # the best of several methods, per direction
    kd.append(_r("kd", "s", 44.0, teacher_modality="y", student_modality="x"))
    many = {**g, "methods": ["fd", "kd"]}
    value, ok = check_target(many, Rows(kd))
    assert ok is True and "y→x kd +4.00" in value and "x→y fd +2.00" in value
    assert check_target({**many, "min": 4.5}, Rows(kd))[1] is False
    assert check_target({**many, "dataset": "elsewhere"}, Rows(kd))[1] is None  # restricted to a dataset


def test_best_of():
    rows = Rows([_r("covmatch", "m", 10.0), _r("raha", "m", 12.0), _r("mdm", "m", 11.0)])
    t = {"kind": "best_of", "dataset": "d", "metric": "m", "budget": 1, "methods": ["covmatch", "raha"], "vs": "mdm"}
    text, ok = check_target(t, rows)
    assert ok is True and "best raha" in text
    assert check_target({**t, "vs": "raha", "methods": ["covmatch", "mdm"]}, rows)[1] is False
    assert check_target({**t, "methods": ["covmatch", "absent"], "vs": "mdm"}, rows)[1] is None  # may still be met


def test_each_above_and_best_retention():
    rows = Rows([_r("random", "m", 10.0), _r("a", "m", 12.0), _r("b", "m", 9.0), _r("a-init", "m", 11.0),
                 _r("random@paper", "m", 8.0), _r("a@paper", "m", 9.0), _r("b@paper", "m", 9.5),
                 _r("full", "m", 20.0, budget=None)])
    t = {"kind": "each_above", "dataset": "d", "metric": "m", "methods": ["a", "b"], "base": "random", "budgets": [1],
         "protocols": ["", "paper"]}
    text, ok = check_target(t, rows)
    assert ok is False and text.startswith("3 of 4 above") and "b 1: 9.00 vs random 10.00" in text
    assert check_target({**t, "methods": ["a"]}, rows)[1] is True
    assert check_target({**t, "methods": ["a"], "factor": 1.2, "protocols": [""]}, rows)[1] is True  # 12 ≥ 1.2 × 10
    assert check_target({**t, "methods": ["a"], "factor": 1.2}, rows)[1] is False  # a@paper 9 < 1.2 × 8
    assert check_target({**t, "methods": ["a"], "factor": 1.25, "protocols": [""]}, rows)[1] is False
    own = {**t, "base": {"a": "a-init"}, "protocols": [""]}
    assert check_target(own, rows) == ("1 of 1 above", True)
    gap = check_target({**own, "protocols": ["", "paper"]}, rows)
    assert gap[1] is None and "missing: a-init@paper 1" in gap[0]  # no failure, a missing start: not yet decidable
    ret = {"kind": "retention", "dataset": "d", "metric": "m", "budget": 1, "methods": ["a", "b"], "min": 0.6}
    text, ok = check_target(ret, rows)
    assert ok is True and text.startswith("best a 12.00 ± 1.00 / full 20.00 ± 1.00 = 60.0 %")
    assert check_target({**ret, "min": 0.61}, rows)[1] is False


def test_why_missed_placeholders_follow_the_rows():
    import pytest

    from mmdistill.bench.targets import why_missed_text

    t = {**CHAIN, "why_missed": "b {row:b:1}, a {mean:a:1}, {pct:a:1} of full, gain {gain:a:b:1}, "
                                "other metric {mean:a:1:r}, paper {pct:a@paper:1}, absent {row:z:1}"}
    rows = [_r("a", "acc", 40.0), _r("b", "acc", 35.0), _r("full", "acc", 80.0, budget=2700),
            _r("a", "r", 5.5), _r("a@paper", "acc", 30.0), _r("full@paper", "acc", 60.0, budget=2700),
            _r("a", "acc", 99.0, dataset="e")]
    assert why_missed_text(t, Rows(rows)) == ("b 35.00 ± 1.00, a 40.00, 50.0 % of full, gain +5.00, other metric "
                                              "5.50, paper 50.0 %, absent (not measured)")
    rows[0] = _r("a", "acc", 30.0)  # the text follows the rows
    assert "gain -5.00" in why_missed_text(t, Rows(rows))
    with pytest.raises(ValueError, match="malformed"):
        why_missed_text({**CHAIN, "why_missed": "{row:a}"}, Rows(rows))
    with pytest.raises(ValueError, match="malformed"):
        why_missed_text({**CHAIN, "why_missed": "{gain:a:b:x}"}, Rows(rows))
