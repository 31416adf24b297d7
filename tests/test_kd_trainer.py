"""KD trainer, teacher cache, modality views, CLI and bench wiring on tiny synthetic paired sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from mmdistill.config import from_dict
from mmdistill.data.paired import PairedDataset
from mmdistill.errors import ConfigError
from mmdistill.kd.config import KDRunConfig
from mmdistill.kd.trainer import run_seed
from mmdistill.kd.views import make_view

TINY = {"epochs": 1, "batch_size": 32}




def _av(split: str, n: int, seed: int) -> PairedDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    a = torch.randn(n, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1)
    v = torch.randn(n, 1, 6, 6, generator=g) + y.view(-1, 1, 1, 1)
    return PairedDataset("toy-av", split, "classification", {"audio": a, "visual": v}, labels=y)


def _it(split: str, n_img: int, seed: int) -> PairedDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n_img) % 3
    t2i = torch.cat([torch.arange(n_img), torch.arange(n_img)[::2]])  # 1 or 2 captions per image
    img = torch.randn(n_img, 3, 8, 8, generator=g) + y.view(-1, 1, 1, 1)
    txt = torch.randn(t2i.shape[0], 12, generator=g) + y[t2i].view(-1, 1)
    return PairedDataset("toy-it", split, "retrieval", {"image": img, "text": txt}, labels=y, text_to_image=t2i,
                         extra_labels={"subgroup": torch.arange(n_img) % 2})


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))


def _cfg(**kw) -> KDRunConfig:
    base = {"dataset": "toy-av", "teacher_modality": "audio", "student_modality": "visual",
            "student_train": TINY, "teacher_train": TINY,
            "student": {"kwargs": {"width": 8}}, "teacher": {"kwargs": {"width": 8}}}
    base.update(kw)
    return from_dict(KDRunConfig, base)


VARIANTS_DIR = Path(__file__).resolve().parents[1] / "configs" / "kd" / "variants"


def _method_and_params(label: str) -> tuple[str, dict]:
    """A registered method, or a variant config's method + params (configs/kd/variants/<label>.yaml)."""
    path = VARIANTS_DIR / f"{label}.yaml"
    if not path.is_file():
        return label, {}
    spec = yaml.safe_load(path.read_text())
    return spec["method"], dict(spec["params"])


@pytest.mark.parametrize("method", ["no-kd", "kd", "dkd", "dist", "fitnet", "pkd", "c2kd", "fd-cmkd",
                                    "fd-cmkd-permuted", "fd-cmkd-heads-only", "fd-cmkd-learned-split", "fd-cmkd-sum"])
def test_every_method_trains_and_reports(method):
    tr, te = _av("train", 48, 0), _av("test", 30, 1)
    base, params = _method_and_params(method)
    r = run_seed(_cfg(method=base, params=params), tr, te, seed=0)
    assert 0.0 <= r["student_acc"] <= 100.0 and 0.0 <= r["teacher_acc"] <= 100.0
    assert all(torch.isfinite(torch.tensor(v)) for k, v in r["history"][-1].items() if isinstance(v, float))
    if method == "c2kd":
        assert "teacher_acc_after" in r
    if method.startswith("fd-cmkd"):
        assert -1.0 <= r["band_cos_low"] <= 1.0 and -1.0 <= r["band_cos_high"] <= 1.0
    if method == "fd-cmkd-learned-split":
        assert 0.5 < r["final_cut"] < 4.5  # D = 8: 4 non-DC bins


def test_teacher_cached_and_frozen_teacher_untouched(tmp_path):
    tr, te = _av("train", 48, 0), _av("test", 30, 1)
    r1 = run_seed(_cfg(method="fd-cmkd"), tr, te, seed=3)
    r2 = run_seed(_cfg(method="kd"), tr, te, seed=3)
    assert not r1["teacher_from_cache"] and r2["teacher_from_cache"]
    assert r1["teacher_acc"] == r2["teacher_acc"] and r1["teacher_cache_key"] == r2["teacher_cache_key"]
    files = list((tmp_path / "cache" / "teachers").iterdir())
    assert sorted(p.suffix for p in files) == [".json", ".safetensors"]
    man = json.loads(next(p for p in files if p.suffix == ".json").read_text())
    assert man["recipe"]["modality"] == "audio" and len(man["sha256"]) == 64
    # a different recipe (epochs) is a different teacher
    r3 = run_seed(_cfg(method="kd", teacher_train={"epochs": 2, "batch_size": 32}), tr, te, seed=3)
    assert r3["teacher_cache_key"] != r1["teacher_cache_key"]
    # a corrupted weight file is detected and the teacher retrained
    w = next(p for p in files if p.suffix == ".safetensors")
    w.write_bytes(w.read_bytes()[:-4] + b"\0\0\0\0")
    r4 = run_seed(_cfg(method="kd"), tr, te, seed=3)
    assert not r4["teacher_from_cache"]


def test_retrieval_view_text_teacher_image_student():
    tr, te = _it("train", 20, 0), _it("test", 9, 1)
    v = make_view(tr, "image", "text", "label")
    assert v.x_student.shape[0] == 20 and v.ptr[-1] == tr.tensors["text"].shape[0]
    g = torch.Generator().manual_seed(0)
    rows = torch.arange(20)
    for _ in range(5):  # every drawn caption belongs to its image
        assert torch.equal(tr.text_to_image[v.sample_partners(rows, g)], rows)
    assert torch.equal(make_view(tr, "image", "text", "subgroup").y_student, torch.arange(20) % 2)
    r = run_seed(_cfg(dataset="toy-it", teacher_modality="text", student_modality="image", method="fd-cmkd",
                      teacher={"kwargs": {"hidden": 8}}), tr, te, seed=0)
    assert r["n_test_student_rows"] == 9 and r["dims"]["t_feat"] == 8 and r["dims"]["s_feat"] == 8
    with pytest.raises(ConfigError):
        make_view(tr, "image", "image")
    with pytest.raises(ConfigError):
        make_view(tr, "image", "text", "nope")


def test_run_kd_results_and_cli(tmp_path, monkeypatch):
    import mmdistill.kd.trainer as trainer
    from mmdistill.cli import main

    monkeypatch.setattr(trainer, "load_dataset", lambda name, split, root=None, **kw: _av(split, 48 if split == "train" else 30, 0))
    cfg = tmp_path / "kd.yaml"
    cfg.write_text("dataset: toy-av\nstudent_train: {epochs: 1, batch_size: 32}\nteacher_train: {epochs: 1, batch_size: 32}\n"
                   "student: {kwargs: {width: 8}}\nteacher: {kwargs: {width: 8}}\nseeds: [0, 1]\n")
    out = tmp_path / "run"
    rc = main(["kd", "--teacher-modality", "visual", "--student-modality", "audio", "--method", "fd-cmkd",
               "--dataset", "toy-av", "--config", str(cfg), "--out", str(out)])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["metrics"]["student_acc"]["per_seed"] and len(res["metrics"]["teacher_acc"]["per_seed"]) == 2
    p = res["protocol"]
    assert p["selection"] == "last" and p["teacher_modality"] == "visual" and p["seeds"] == [0, 1]
    assert p["tap_points"]["student"]["feat"] == "features.2.norm" and p["optimizer"] == "adam"
    assert (out / "log.jsonl").read_text().count("\n") == 2
    assert main(["kd", "--method", "nope", "--config", str(cfg), "--out", str(tmp_path / "x")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: toy-av\nstudent_train: {epoks: 3}\n")
    assert main(["kd", "--config", str(bad), "--out", str(tmp_path / "y")]) == 2


def test_teacher_key_uses_the_resolved_net():
    from mmdistill.kd.config import NetSpec, TrainSpec
    from mmdistill.kd.teacher import recipe_key, teacher_recipe

    def key(spec):
        return recipe_key(teacher_recipe("d", {}, "audio", "label", spec, TrainSpec(), 0, (1, 32, 32), 10))

    auto = key(NetSpec())
    assert auto == key(NetSpec(arch="convnet", kwargs={"width": 32, "depth": 3, "norm": "batch"}, feat_tap="features.1.norm"))
    assert auto != key(NetSpec(kwargs={"width": 16}))



def test_the_trainer_has_no_method_branches():
    """Method-specific logs and reports go through KDLoss.epoch_log / final_report, not name checks."""
    import re
    from pathlib import Path

    import mmdistill.kd.trainer as trainer
    from mmdistill.kd.registry import kd_method_names

    src = Path(trainer.__file__).read_text()
    assert not re.search(r"\.name\s*==", src)
    assert not any(f'"{m}"' in src for m in kd_method_names())


def test_paper_protocol_sets_the_references_recipe_and_is_recorded(tmp_path, monkeypatch):
    import mmdistill.kd.trainer as trainer
    from mmdistill.kd.protocol import resolve_protocol

    common = _cfg(method="kd")
    assert resolve_protocol(common) is common and common.student_train.optimizer == "adam"
    paper = resolve_protocol(_cfg(method="kd", protocol="paper"))
    for spec in (paper.student_train, paper.teacher_train):
        assert (spec.optimizer, spec.lr, spec.momentum, spec.weight_decay, spec.batch_size, spec.lr_schedule,
                spec.poly_update) == ("sgd", 0.01, 0.9, 0.0, 64, "poly", "epoch_start")
        assert spec.epochs == 1 and spec.augment  # kept from the config
    assert resolve_protocol(_cfg(method="c2kd", protocol="paper")).student_train.poly_update == "after_step"
    assert resolve_protocol(paper) == paper  # idempotent: results' config.yaml re-runs as it ran
    with pytest.raises(ConfigError):
        _cfg(protocol="best-on-test")

    monkeypatch.setattr(trainer, "load_dataset", lambda name, split, root=None, **kw: _av(split, 48 if split == "train" else 30, 0))
    res_c = trainer.run_kd(_cfg(method="kd"), tmp_path / "c")
    res_p = trainer.run_kd(_cfg(method="kd", protocol="paper"), tmp_path / "p")
    assert res_c.protocol["protocol"] == "common" and res_p.protocol["protocol"] == "paper"
    assert res_p.protocol["optimizer"] == "sgd" and res_p.protocol["teacher"]["train"]["lr_schedule"] == "poly"
    # a different recipe trains a different teacher
    assert res_c.extra["per_seed"][0]["teacher_cache_key"] != res_p.extra["per_seed"][0]["teacher_cache_key"]
    assert yaml.safe_load((tmp_path / "p" / "config.yaml").read_text())["student_train"]["optimizer"] == "sgd"
