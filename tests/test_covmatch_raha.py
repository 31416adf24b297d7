"""CovMatch and RAHA distillers: the online proxy schedule, what learns, loss identities through the method,
resume, errors, and few-iteration runs of the shipped configs (emoji quick configs, paper configs on coco-mini)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mmdistill.config import from_dict, load_yaml
from mmdistill.distill import Budget, get_method, run
from mmdistill.distill.covariance import cross_covariance
from mmdistill.distill.online_proxy import OnlineProxy, ProxyConfig
from mmdistill.distill.raha import energy_regularisers, kl_rows
from mmdistill.errors import ConfigError
from vl_fixtures import NET, tiny_retrieval

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "vl"
PROXY = {"reset_every": 3, "batch_size": 16, "pretrain": {"net": dict(NET), "encoder_epochs": 1, "encoder_batch_size": 16}}


def _make(method: str, n: int = 8, ds=None, **over):
    ds = ds or tiny_retrieval()
    cls = get_method(method)
    params = {"iterations": 6, "batch_real": 16, "batch_syn": 8, "proxy": dict(PROXY), **over}
    return cls(from_dict(cls.Config, params, where="test"), ds, Budget(n, "pairs"), seed=0)


# ------------------------------------------------------------------------------------------ online proxy
def test_proxy_resets_to_pretrained_and_redraws_projections():
    ds = tiny_retrieval()
    cfg = from_dict(ProxyConfig, PROXY)
    p = OnlineProxy(ds, cfg, seed=0)
    assert p.maybe_reset(0) and not p.maybe_reset(1) and not p.maybe_reset(2)
    trunk0 = {k: v.clone() for k, v in p.model.trunk.state_dict().items()}
    for k, v in p.pretrained.items():
        assert torch.equal(trunk0[k], v)
    g0 = p.model.g_v.weight.detach().clone()
    x, t = ds.tensors["image"][ds.text_to_image[:16]], ds.tensors["text"][:16]
    p.step(x, t)
    assert not torch.equal(p.model.trunk.state_dict()["text_head.0.weight"], trunk0["text_head.0.weight"])
    assert p.maybe_reset(3)  # round 1: trunk back to pretrained, new projections
    for k, v in p.pretrained.items():
        assert torch.equal(p.model.trunk.state_dict()[k], v)
    assert not torch.equal(p.model.g_v.weight, g0)
    p.reset(0)
    assert torch.equal(p.model.g_v.weight, g0)  # the round's draw is a function of (seed, round)


@pytest.mark.parametrize("method", ["covmatch", "raha"])
def test_only_synthetic_data_learn_and_proxy_gets_no_matching_gradient(method):
    d = _make(method)
    torch.manual_seed(0)
    d.init()
    x0, t0 = d.images.detach().clone(), d.texts.detach().clone()
    d.proxy.maybe_reset(0)
    logs = d.loss_terms(d.real_batch(16), d.syn_batch())
    assert all(p.grad is None for p in d.proxy.model.parameters())
    logs = d.step(0)
    assert math.isfinite(logs["loss"]) and logs["grad_norm_image"] > 0 and logs["grad_norm_text"] > 0
    assert not torch.equal(d.images.detach(), x0) and not torch.equal(d.texts.detach(), t0)
    assert [g["params"][0] for g in d.opt.param_groups] == [d.images, d.texts]


def test_covmatch_loss_is_zero_when_synthetic_equals_real_at_rho_1():
    d = _make("covmatch", rho=1.0)
    d.init()
    d.proxy.maybe_reset(0)
    real = d.real_batch(16)
    terms = d.loss_terms(real, real)
    assert float(terms["loss"].detach()) < 1e-8
    other = d.loss_terms(real, d.real_batch(16))
    assert float(other["cov"].detach()) > 1e-6 and float(other["feat_image"].detach()) > 0


def test_covmatch_gradcheck_through_a_tiny_proxy():
    d = _make("covmatch", n=4)
    d.init()
    d.proxy.maybe_reset(0)
    d.proxy.model.double()
    real = tuple(t.double() for t in d.real_batch(8))
    img = d.images.detach().double()[:4].requires_grad_(True)
    txt = d.texts.detach().double()[:4].requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: d.loss_terms(real, (a, b))["loss"], (img, txt), eps=1e-6, atol=1e-5)


def test_raha_regularisers_and_kl_rows():
    u, v = torch.eye(4)[:, :2], torch.eye(3)[:, :2]
    c = torch.zeros(4, 3)
    c[0, 0], c[1, 1] = 2.0, 1.0  # all energy in the range: e_syn 5
    floor, res = energy_regularisers(c, u, v, torch.tensor(5.0), 1e-8)
    assert float(floor) == pytest.approx(0.0) and float(res) == pytest.approx(0.0)
    floor, _ = energy_regularisers(torch.zeros(4, 3), u, v, torch.tensor(5.0), 1e-8)
    assert float(floor) == pytest.approx(1.0)
    for r, want in ((0.5, 0.5), (2.0, 3.0)):
        c2 = c.clone()
        c2[3, 2] = math.sqrt(r * 5.0)  # residual energy r * e_syn
        assert float(energy_regularisers(c2, u, v, torch.tensor(5.0), 1e-8)[1]) == pytest.approx(want, rel=1e-5)
    p = torch.softmax(torch.randn(3, 5), 1)
    k = kl_rows(p, p)
    assert torch.diagonal(k).abs().max() < 1e-6 and (k >= -1e-6).all()


def test_raha_matching_is_invariant_to_synthetic_order():
    d = _make("raha")
    d.init()
    d.proxy.maybe_reset(0)
    torch.manual_seed(1)
    real = d.real_batch(16)
    perm = torch.randperm(8)
    a = d.loss_terms(real, (d.images, d.texts))
    b = d.loss_terms(real, (d.images[perm], d.texts[perm]))
    for k in ("loss", "hitc", "match_range", "match_residual", "reg_range", "reg_residual"):
        assert float(a[k].detach()) == pytest.approx(float(b[k].detach()), rel=1e-4, abs=1e-6), k


@pytest.mark.parametrize("method", ["covmatch", "raha"])
def test_exact_resume_and_determinism(method, tmp_path):
    full = run(_make(method), tmp_path / "a", progress=False)
    # killed after iteration 4; the checkpoint after iteration 3 resumes mid-round (reset_every 3: round 1 = its 3..5)
    run(_make(method), tmp_path / "b", progress=False, stop_after=5, checkpoint_every=2)
    seen = []
    resumed = run(_make(method), tmp_path / "b", progress=False, resume=True, checkpoint_every=2, on_resume=seen.append)
    assert seen == [4]
    assert torch.equal(full.tensors["image"], resumed.tensors["image"])
    assert torch.equal(full.tensors["text"], resumed.tensors["text"])
    assert full.meta["eval_hint"]["protocol"] == "covmatch"


def test_bad_inputs():
    with pytest.raises(ConfigError, match="rho"):
        _make("covmatch", rho=0.0).init()
    with pytest.raises(ConfigError, match="columns 'batch'"):
        _make("raha", columns="batch", batch_real=16).init()
    with pytest.raises(ConfigError, match="reset_every"):
        _make("covmatch", proxy={**PROXY, "reset_every": 0}).init()
    with pytest.raises(ConfigError, match="unknown"):
        _make("raha", curvture=1.0)


# -------------------------------------------------------------------------------------- shipped configs
def _configs(kind: str) -> list[Path]:
    return sorted(p for m in ("covmatch", "raha") for p in CONFIGS.glob(f"{m}_{kind}.yaml"))


def test_configs_exist_and_resolve():
    from mmdistill.evaluate.protocol import default_protocol
    from mmdistill.runs import resolve_run_config

    names = {p.stem for p in CONFIGS.glob("*.yaml")}
    for m in ("covmatch", "raha"):
        assert {f"{m}_emoji", f"{m}_flickr30k", f"{m}_coco"} <= names
    for p in [*_configs("emoji"), *_configs("flickr30k"), *_configs("coco")]:
        cfg = resolve_run_config(p)
        from_dict(get_method(cfg.method).Config, cfg.params, where=str(p))
        default_protocol("retrieval", **cfg.eval)
    for p in [*_configs("flickr30k"), *_configs("coco")]:
        assert load_yaml(p)["eval"]["protocol"] == "covmatch"


def _shrunk(doc: dict, iterations: int = 3) -> dict:
    """The config's algorithm settings on a tiny network (the CPU test cannot afford ResNet-18 at 224 px)."""
    params = json.loads(json.dumps(doc["params"]))
    params["iterations"] = iterations
    params["proxy"]["pretrain"] = {"net": {"image_arch": "convnet", **NET}, "encoder_epochs": 1, "encoder_batch_size": 64}
    params["proxy"].pop("projection_dim", None)
    return params


@pytest.mark.parametrize("path", _configs("emoji"), ids=lambda p: p.stem)
def test_emoji_config_runs_a_few_iterations(path, tmp_path):
    from data_fixtures import need_shared

    from mmdistill.data import load_dataset

    root = need_shared("emoji-captions")
    ds = load_dataset("emoji", "train", str(root), image_size=32)
    doc = load_yaml(path)
    cls = get_method(doc["method"])
    d = cls(from_dict(cls.Config, _shrunk(doc), where=str(path)), ds, Budget(int(doc["pairs"]), "pairs"), 0)
    syn = run(d, tmp_path / "r", progress=False)
    assert syn.tensors["image"].shape == (100, 3, 32, 32) and syn.tensors["text"].shape == (100, 384)
    recs = [json.loads(l) for l in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in recs if "loss" in r)


@pytest.mark.parametrize("path", [*_configs("flickr30k"), *_configs("coco")], ids=lambda p: p.stem)
def test_paper_config_runs_on_coco_mini(path, tmp_path):
    from data_fixtures import need_shared

    from mmdistill.data import load_dataset
    from mmdistill.data.coco_mini import CAPTIONS_FILE

    root = need_shared(CAPTIONS_FILE)
    ds = load_dataset("coco-mini", "train", str(root), image_size=16)
    doc = load_yaml(path)
    cls = get_method(doc["method"])
    cfg = from_dict(cls.Config, _shrunk(doc, 2), where=str(path))
    d = cls(cfg, ds, Budget(int(doc["pairs"]), "pairs"), 0)
    d.init()
    x0 = d.images.detach().clone()
    for it in range(2):
        assert math.isfinite(d.step(it)["loss"])
    assert not torch.equal(d.images.detach(), x0)


# ------------------------------------------------------------------------------------- covmatch protocol
def test_covmatch_protocol_trains_both_towers_at_its_fixed_lrs(monkeypatch):
    from mmdistill.evaluate import retrieval
    from mmdistill.evaluate.retrieval import RetrievalProtocol, train_and_test

    seen = {}
    real = retrieval._build_optimizer

    def spy(proto, model, lrs):
        seen["opt"], seen["model"] = real(proto, model, lrs), model
        seen["enc0"] = [p.detach().clone() for p in model.image_encoder.parameters()]
        return seen["opt"]

    monkeypatch.setattr(retrieval, "_build_optimizer", spy)
    g = torch.Generator().manual_seed(0)
    img, txt = torch.randn(24, 3, 8, 8, generator=g), torch.randn(24, 6, generator=g)
    proto = from_dict(RetrievalProtocol, {"width": 4, "depth": 2, "embed_dim": 8, "text_hidden": 16, "epochs": 10,
                                          "batch_size": 8, "protocol": "covmatch", "trained_modules": "heads", "seeds": [0]})
    res = train_and_test(proto, img, txt, img[:10], txt[:10], torch.arange(10), 0, learned_lrs={"image": 0.05, "text": 0.02})
    opt = seen["opt"]
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9 and opt.defaults["weight_decay"] == 5e-4
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.1, 0.01]  # image head, text head, image encoder
    assert all(g["lr"] == pytest.approx(0.1 * g["initial_lr"]) for g in opt.param_groups)  # decayed at epoch 6
    enc = list(seen["model"].image_encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(enc, seen["enc0"]))  # the encoder trains despite "heads"
    d = proto.describe(24)
    assert d["protocol"] == "covmatch" and d["lr_source"] == "fixed" and d["trained_modules"] == "full"
    assert d["encoder_lr"] == 0.01 and "CovMatch" in d["learner"] and 0 <= res["r_mean"] <= 100
