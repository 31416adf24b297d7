"""The shipped suite files (benchmarks/suites/*.yaml) expand to the cells the benchmark tables were measured with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdistill.bench.spec import Cell, KDCell, cell_from_dict
from mmdistill.bench.suite import ARCHS_ENV, load_suite, merge, suite_names
from mmdistill.config import from_dict, load_yaml
from mmdistill.distill import get_method

ROOT = Path(__file__).resolve().parents[1]
SUITES, CONFIGS = ROOT / "benchmarks" / "suites", ROOT / "configs"


def _load(name: str):
    return load_suite(name, SUITES, CONFIGS)


def test_every_committed_table_has_a_suite_file_and_every_row_a_cell():
    names = suite_names(SUITES)
    assert {"quick", "av", "vl", "kd"} <= set(names)
    for name in names:
        ids = {i for c in _load(name).cells for i in c.ids}
        rows = json.loads((ROOT / "benchmarks" / f"{name}.json").read_text(encoding="utf-8"))
        measured = {r["cell"] for r in rows if "/davdd-bank/" not in r["cell"]}  # one-off bank rows: a study script
        assert measured <= ids, sorted(measured - ids)[:5]  # (some suite cells may not have been run yet)


def test_every_distillation_cell_has_a_valid_method_config():
    for name in ("quick", "av", "vl"):
        for c in _load(name).cells:
            if c.method != "full":
                from_dict(get_method(c.method).Config, c.params, where=c.id)


def test_av_cells():
    cells = _load("av").cells
    by = {(c.dataset, c.row_method, c.budget): c for c in cells}
    hard1 = {c.row_method: c for c in cells if c.dataset == "av-digits-hard" and c.budget == 1}
    assert hard1["dm-avdd-lr"].method == "dm" and hard1["dm-avdd-lr"].label == "dm-avdd-lr"
    cfg = load_yaml(CONFIGS / "av" / "dm-avdd-lr_av-digits-hard.yaml")
    assert hard1["dm-avdd-lr"].params == cfg["params"]
    assert hard1["davdd-init"].method == "davdd" and hard1["davdd-init"].params["iterations"] == 0
    assert {k: v for k, v in hard1["davdd-init"].params.items() if k != "iterations"} == \
        {k: v for k, v in hard1["davdd"].params.items() if k != "iterations"}  # DAVDD's own start, same set-up
    assert hard1["davdd"].params["fresh_prob"] == 0.5 and hard1["davdd"].params["lambda_common"] == 10  # val choice at IPC 1
    assert by[("av-digits-hard", "davdd", 10)].params["fresh_prob"] == 0.0  # the config's defaults elsewhere
    assert hard1["davdd"].extra_archs == ["lenet", "alexnet", "vgg11", "resnet18"] and hard1["davdd-init"].extra_archs == []
    for c in cells:  # the target chain distils three sets, and spoken-emoji's headline methods; the rest one
        if c.method in ("dm", "avdd", "davdd") and c.dataset != "spoken-emoji":
            assert c.syn_seeds == ([0, 1, 2] if (c.dataset, c.budget) == ("av-digits-hard", 1) else [0]), c.id
    assert by[("av-digits", "herding", 10)].params == {"proxy": {"epochs": 4}}
    assert all(c.data == {"n_mels": 32, "frames": 32} for c in cells if c.dataset != "spoken-emoji")
    se = {(c.row_method, c.budget): c for c in cells if c.dataset == "spoken-emoji"}
    assert all(c.av_retrieval for c in se.values())
    assert all(c.data == {} for (m, _), c in se.items() if m != "full-shuffled-within-class")
    assert se[("full-shuffled-within-class", None)].data == {"shuffle_within_class": 1}
    assert se[("dm", 10)].protocols == ["paper"] and se[("full-shuffled-within-class", None)].protocols == []
    assert not any(c.av_retrieval for c in cells if c.dataset != "spoken-emoji")
    for m in ("dm", "avdd", "davdd", "davdd-init"):
        assert se[(m, 10)].syn_seeds == [0, 1, 2]
    ablations = {m for m, b in se if m.startswith("davdd-no-") or m == "davdd-random-bank"}
    assert ablations == {"davdd-no-private", "davdd-no-common", "davdd-no-intermodal", "davdd-random-bank",
                         "davdd-no-prototypes", "davdd-no-infonce"}
    assert se[("davdd-no-private", 10)].params["no_private"] is True
    assert se[("davdd", 10)].extra_archs == ["lenet", "alexnet", "vgg11", "resnet18"]


def test_extra_archs_env_restricts_the_run(monkeypatch):
    monkeypatch.setenv(ARCHS_ENV, "lenet")
    assert {tuple(c.extra_archs) for c in _load("av").cells} == {("lenet",), ()}
    monkeypatch.setenv(ARCHS_ENV, "")
    assert all(c.extra_archs == [] for c in _load("av").cells)


def test_vl_cells_share_buffers_and_one_protocol():
    s = _load("vl")
    assert s.threads == 1 and all(c.threads == 1 for c in s.cells)
    enc = {c.eval["image_encoder_weights"] for c in s.cells}
    assert len(enc) == 1
    lors = next(c for c in s.cells if c.row_method == "lors" and c.budget == 100)
    speed = next(c for c in s.cells if c.row_method == "lors-w128")
    assert speed.params["experts"]["net"]["width"] == 128 and speed.params["lrs_by_budget"] == {}
    assert speed.params["buffer"] != lors.params["buffer"]
    assert speed.params["experts"]["net"]["depth"] == lors.params["experts"]["net"]["depth"]
    assert {str(b[3]) for b in s.buffers} == {c.params["buffer"] for c in s.cells if "buffer" in c.params}
    mem = [c for c in s.cells if "syn_steps" in c.extra]
    assert sorted((c.method, c.extra["syn_steps"]) for c in mem) == [("mtt-vl", 5), ("mtt-vl", 20), ("tesla-vl", 5),
                                                                      ("tesla-vl", 20)]
    three = {(c.row_method, c.budget) for c in s.cells if c.syn_seeds == [0, 1, 2]}
    assert ("tm-init", 100) in three and ("mdm", 100) in three and ("mdm", 200) not in three


def test_kd_cells_round_trip():
    cells = _load("kd").cells
    assert all(isinstance(c, KDCell) and c.threads == 1 for c in cells)
    ids = [c.id for c in cells]
    assert "av-digits-hard/audio->visual/fd-cmkd/convnet" in ids and "emoji/text->image/similarity/convnet" in ids
    assert "av-digits-hard/visual->audio/fd-cmkd@gap-head/convnet-gap" in ids
    c = cells[0]
    assert cell_from_dict(json.loads(json.dumps(c.as_dict()))) == c
    assert type(cell_from_dict(Cell("s", "d", "m").as_dict())) is Cell


def test_merge_replaces_with_an_empty_mapping():
    assert merge({"a": {"x": 1, "y": 2}, "b": 1}, {"a": {"y": 3}}) == {"a": {"x": 1, "y": 3}, "b": 1}
    assert merge({"a": {"x": 1}}, {"a": {}}) == {"a": {}}


@pytest.mark.parametrize("name", ["quick", "av", "vl", "kd"])
def test_targets_name_known_kinds(name):
    from mmdistill.bench.targets import Rows, check_target

    for t in load_yaml(SUITES / f"{name}.yaml").get("targets") or []:
        value, ok = check_target(t, Rows([]))
        assert ok is None and "missing" in value


def test_where_rules_merge_params_per_budget(tmp_path):
    (tmp_path / "suites").mkdir()
    (tmp_path / "configs" / "av").mkdir(parents=True)
    (tmp_path / "configs" / "av" / "dm_d.yaml").write_text("method: dm\nparams: {iterations: 5, lr_audio: 0.2}\n")
    (tmp_path / "suites" / "s.yaml").write_text(
        "name: s\ngroups:\n  - datasets: [d]\n    methods: [dm]\n    config: av/{method}_{dataset}.yaml\n"
        "    budgets: [1, 10]\n    unit: ipc\n    where:\n      - {budget: 1, set: {params: {lr_audio: 0.5}, syn_seeds: [0, 1]}}\n")
    cells = {c.budget: c for c in load_suite("s", tmp_path / "suites", tmp_path / "configs").cells}
    assert cells[1].params == {"iterations": 5, "lr_audio": 0.5} and cells[1].syn_seeds == [0, 1]
    assert cells[10].params == {"iterations": 5, "lr_audio": 0.2} and cells[10].syn_seeds is None
