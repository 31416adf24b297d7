"""Expert buffers (resume, dataset check), budget fairness, RepBlend blending, scale-bug flag, exact resume."""

import json

import pytest
import torch
from safetensors.torch import load_file

from mmdistill.config import from_dict
from mmdistill.distill import Budget, get_method, run
from mmdistill.losses.contrastive import contrastive_logits, info_nce
from mmdistill.distill.vl_tm import fair_pairs
from mmdistill.errors import ConfigError
from mmdistill.experts.buffers import ExpertBuffer, ExpertConfig, train_experts
from vl_fixtures import experts_cfg, tiny_retrieval


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))


def _method(name, ds, pairs=8, **params):
    cls = get_method(name)
    mode = "heads" if name == "repblend" else "full"
    base = {"iterations": 4, "syn_steps": 2, "minibatch": 5, "lr_img": 1.0, "lr_txt": 1.0, "lr_lr": 1e-5,
            "experts": experts_cfg(mode)}
    base.update(params)
    return cls(from_dict(cls.Config, base), ds, Budget(pairs, "pairs"), seed=1)


def test_budget_fairness_arithmetic():
    # emoji 32x32: one pair = 3*32*32 + 384 = 3456 floats; LoRS r=10 at 100 pairs -> 99 pairs (the papers' N-1)
    f = fair_pairs(100, 3456, "lowrank", 10, 2)
    assert f["pairs"] == 99 and f["used_floats"] == 99 * 3456 + 99 * 21 + 2 <= 100 * 3456
    assert fair_pairs(100, 3456, "none", 0, 2)["pairs"] == 99  # two step sizes alone cost a pair
    assert fair_pairs(100, 3456, "none", 0, 0)["pairs"] == 100
    assert fair_pairs(100, 3456, "full", 0, 2)["pairs"] == 97  # 97*3456 + 97^2 + 2 = 344643 <= 345600 < 98*3456 + 98^2
    assert fair_pairs(200, 3456, "lowrank", 5, 2)["pairs"] == 199


def test_exported_set_fits_budget(tmp_path):
    ds = tiny_retrieval()
    d = _method("lors", ds, pairs=10)
    syn = run(d, tmp_path / "run", progress=False)
    fpp = ds.floats_per_pair()
    assert syn.stored_floats() <= 10 * fpp < syn.stored_floats() + fpp
    assert syn.meta["budget_fairness"]["pairs"] == len(syn) == 9
    assert len(syn.meta["captions"]) == 9 and all(c.startswith("caption ") for c in syn.meta["captions"])
    assert {"syn_lr_img", "syn_lr_txt", "sim_a", "sim_L", "sim_R"} <= set(syn.extras)


def test_experts_resume_skips_finished_and_rejects_other_dataset(tmp_path):
    ds = tiny_retrieval()
    cfg = from_dict(ExpertConfig, experts_cfg("full"))
    out = tmp_path / "buf"
    buf = train_experts(ds, cfg, out, progress=False)
    assert buf.num_experts == 2 and buf.epochs == 3
    man = json.loads((out / "manifest.json").read_text())
    assert man["dataset"] == "tiny" and man["modules"] == ["image_encoder", "image_head", "text_head"]
    assert man["param_order"][0][0].startswith("image_encoder.") and man["loss"]["scale"] == "exp(log_scale)"
    e0, e1 = out / "expert_000.safetensors", out / "expert_001.safetensors"
    t0, b1 = e0.stat().st_mtime_ns, load_file(str(e1))
    e1.unlink()
    buf = train_experts(ds, cfg, out, progress=False)
    assert e0.stat().st_mtime_ns == t0  # finished expert skipped
    b1_again = load_file(str(e1))
    assert all(torch.equal(b1[k], b1_again[k]) for k in b1)  # the missing one retrained identically (seeded)
    assert buf.load(0, 0).numel() == sum(buf.sizes) and not torch.equal(buf.load(0, 0), buf.load(0, 3))
    other = tiny_retrieval(name="other", seed=5)
    with pytest.raises(ConfigError, match="trained on dataset 'tiny'"):
        ExpertBuffer.open(out, other)
    with pytest.raises(ConfigError, match="trained on dataset 'tiny'"):
        train_experts(other, cfg, out, progress=False)
    same_name = tiny_retrieval(params={"image_size": 16})
    with pytest.raises(ConfigError, match="expert buffer was trained on dataset"):
        ExpertBuffer.open(out, same_name)


def test_heads_buffer_stores_only_heads(tmp_path):
    ds = tiny_retrieval()
    buf = train_experts(ds, from_dict(ExpertConfig, experts_cfg("heads")), tmp_path / "h", progress=False)
    assert buf.manifest["modules"] == ["image_head", "text_head"]
    assert buf.encoder_path is not None and buf.encoder_path.is_file()
    assert not any(n.startswith("image_encoder") for n, _ in buf.manifest["param_order"])


def test_repblend_same_lambda_and_permutation_for_both_modalities(tmp_path):
    ds = tiny_retrieval()
    d = _method("repblend", ds, pairs=10)
    d.init()
    seen = []
    orig_inner, orig_logits = d.inner_loss, d.flat.logits

    def inner(theta, idx, step, data):
        seen.append({"step": step, "idx": idx, "img": data["image"][idx].detach(), "txt": data["text"][idx].detach()})
        return orig_inner(theta, idx, step, data)

    def logits(theta, img, txt, **kw):
        seen[-1]["mixed"] = (img.detach(), txt.detach())
        return orig_logits(theta, img, txt, **kw)

    d.inner_loss, d.flat.logits = inner, logits
    d.step(0)
    assert len(seen) == 2 * d.cfg.syn_steps  # forward pass + replay in the reverse pass
    by_step = {}
    for rec in seen:
        lam, perm = d.mix_draws[rec["step"]]
        mi, mt = rec["mixed"]
        torch.testing.assert_close(mi, lam * rec["img"] + (1 - lam) * rec["img"][perm])
        torch.testing.assert_close(mt, lam * rec["txt"] + (1 - lam) * rec["txt"][perm])
        assert 0.0 < lam < 1.0 and not torch.equal(perm, torch.arange(perm.numel()))
        by_step.setdefault(rec["step"], []).append((mi, mt))
    for step, pair in by_step.items():  # the reverse pass replays the forward pass's lambda and permutation
        (a_i, a_t), (b_i, b_t) = pair
        torch.testing.assert_close(a_i, b_i)
        torch.testing.assert_close(a_t, b_t)


def test_mtt_vl_scale_bug_flag_in_inner_loss(tmp_path):
    ds = tiny_retrieval()
    d = _method("mtt-vl", ds, reproduce_scale_bug=True)
    d.init()
    theta = d.buffer.load(0, 0)
    idx = torch.arange(5)
    zi, zt = d.flat.embed(theta, d.images[idx], d.texts[idx])
    want_bug = info_nce(contrastive_logits(zi, zt, d.flat.log_scale, scale_bug=True))
    want_ok = info_nce(contrastive_logits(zi, zt, d.flat.log_scale))
    got = d.inner_loss(theta, idx, 0, d._data()).detach()
    assert float(got) == pytest.approx(float(want_bug), rel=1e-6)
    assert abs(float(got) - float(want_ok)) > 1e-3


@pytest.mark.parametrize("name", ["lors", "repblend"])
def test_resume_is_exact_through_the_run_loop(tmp_path, name):
    ds = tiny_retrieval()
    ref = run(_method(name, ds), tmp_path / "ref", checkpoint_every=2, progress=False)
    run(_method(name, ds), tmp_path / "k", checkpoint_every=2, progress=False, stop_after=3)
    out = run(_method(name, ds), tmp_path / "k", checkpoint_every=2, progress=False, resume=True)
    for k in ("image", "text"):
        assert torch.equal(out.tensors[k], ref.tensors[k])
    for k in ref.extras:
        assert torch.equal(out.extras[k], ref.extras[k]), k


def test_config_errors(tmp_path):
    ds = tiny_retrieval()
    with pytest.raises(ConfigError, match="needs student 'heads'"):
        _method("repblend", ds, student="full", experts=experts_cfg("full")).init()
    with pytest.raises(ConfigError, match="must equal student"):
        _method("repblend", ds, experts=experts_cfg("full")).init()
    with pytest.raises(ConfigError, match="exceeds the buffer"):
        _method("mtt-vl", ds, max_start_epoch=4).init()


def test_lors_soft_infonce_uses_the_learned_similarity(tmp_path):
    """loss 'infonce' with a learned S trains against S (soft InfoNCE); at S = I it is plain InfoNCE."""
    from mmdistill.losses.contrastive import soft_infonce

    ds = tiny_retrieval()
    d = _method("lors", ds, loss="infonce", similarity="lowrank", sim_rank=2)
    d.init()
    theta = d.buffer.load(0, 0)
    idx = torch.arange(5)
    zi, zt = d.flat.embed(theta, d.images[idx], d.texts[idx])
    logits = contrastive_logits(zi, zt, d.flat.log_scale)
    got0 = d.inner_loss(theta, idx, 0, d._data()).detach()
    assert float(got0) == pytest.approx(float(info_nce(logits)), rel=1e-5)  # S0 = I
    with torch.no_grad():
        d.sim.tensors["R"].add_(0.5)  # S != I now
    s_b = d.sim.block(idx).detach()
    got = d.inner_loss(theta, idx, 0, d._data()).detach()
    assert float(got) == pytest.approx(float(soft_infonce(logits, s_b)), rel=1e-5)
    assert abs(float(got) - float(got0)) > 1e-4


def test_resume_takes_learning_rates_from_the_config(tmp_path):
    """'lower the learning rate and --resume' must take effect: momentum from the checkpoint, lrs from the config."""
    ds = tiny_retrieval()
    d = _method("lors", ds)
    d.init()
    d.step(0)
    state = d.state_dict()
    e = _method("lors", ds, lr_img=0.25, lr_txt=0.5)
    e.init()
    e.load_state_dict(state)
    assert [g["lr"] for g in e.opt.param_groups[:2]] == [0.25, 0.5]
    assert torch.equal(e.opt.state_dict()["state"][0]["momentum_buffer"], d.opt.state_dict()["state"][0]["momentum_buffer"])


def test_lrs_by_budget_overrides_only_that_budget(tmp_path):
    """Per-budget data lrs (issue 5's val calibration at 200/500 pairs): applied at init, recorded in meta.config."""
    ds = tiny_retrieval()
    d = _method("lors", ds, pairs=10, lrs_by_budget={10: {"lr_txt": 0.25}, 8: {"lr_txt": 9.0}})
    d.init()
    assert d.cfg.lr_txt == 0.25 and d.cfg.lr_img == 1.0 and d.opt.param_groups[1]["lr"] == 0.25
    other = _method("lors", ds, pairs=9, lrs_by_budget={"10": {"lr_txt": 0.25}})
    other.init()
    assert other.cfg.lr_txt == 1.0
    syn = run(_method("lors", ds, pairs=10, lrs_by_budget={"10": {"lr_img": 0.5}}), tmp_path / "r", progress=False)
    assert syn.meta["config"]["lr_img"] == 0.5
    with pytest.raises(ConfigError, match="lrs_by_budget"):
        _method("lors", ds, pairs=10, lrs_by_budget={10: {"iterations": 1}}).init()
