"""DAVDD (av-distillation.md §7.6): encoder bank caching/resume/manifest, loss terms, ablation switches."""

import json
import os

import pytest
import torch

from av_fixtures import NET, tiny_av
from mmdistill.config import from_dict
from mmdistill.distill import get_method
from mmdistill.distill.base import Budget, run
from mmdistill.errors import ConfigError, IntegrityError
from mmdistill.experts.bank import BankConfig, DecouplerConfig, EncoderBank
from mmdistill.distill.av_common import AVNetConfig
from mmdistill.seed import derive_seed, seed_everything

BANK = {"num_seeds": 2, "snapshot_epochs": [1, 2], "batch_size": 32}
DEC = {"hidden": 16, "dim": 8, "epochs": 2, "batch_size": 32}


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _davdd(ds, ipc=1, **kw):
    cls = get_method("davdd")
    params = {"iterations": 4, "batch_real": 8, "init": "real", "net": NET, "bank": dict(BANK), "decoupler": dict(DEC), **kw}
    return cls(from_dict(cls.Config, params, where="test"), ds, Budget(ipc, "ipc"), 0)


def _losses(d):
    seed_everything(derive_seed(0, "init"))
    d.init()
    seed_everything(derive_seed(0, "iter", 0))
    return d.losses(0)


def test_every_term_is_nonzero_and_each_switch_removes_its_term():
    ds = tiny_av()
    total, logs = _losses(_davdd(ds))
    terms = ["l_private", "l_common", "l_sample", "l_align"]
    assert all(logs[t] > 0 for t in terms), logs
    assert total.requires_grad
    switches = {"use_private": "l_private", "use_common": "l_common", "use_infonce": "l_sample", "use_proto": "l_align"}
    for flag, term in switches.items():
        total, l2 = _losses(_davdd(ds, **{flag: False}))
        assert l2[term] == 0.0
        assert all(l2[t] > 0 for t in terms if t != term), (flag, l2)
        assert l2["loss"] == pytest.approx(sum(l2[t] for t in terms), rel=1e-5)  # all weights 1
    # intermodal η term is part of L_common
    _, no_eta = _losses(_davdd(ds, eta_intermodal=0.0))
    assert 0 < no_eta["l_common"] < logs["l_common"]


def test_random_nets_ablation_uses_untrained_encoders():
    ds = tiny_av()
    net = AVNetConfig(**NET)
    pre = EncoderBank(ds, net, from_dict(BankConfig, BANK))
    rnd = EncoderBank(ds, net, from_dict(BankConfig, {**BANK, "pretrained": False}))
    assert pre.dir != rnd.dir
    rnd.ensure()
    man = rnd.read_manifest()
    assert len(man["pairs"]) == rnd.cfg.size == 2 and {p["epoch"] for p in man["pairs"].values()} == {0}


def test_degenerate_infonce_is_skipped_with_a_warning():
    ds = tiny_av()
    with pytest.warns(RuntimeWarning, match="single synthetic pair"):
        _, logs = _losses(_davdd(ds, infonce_scope="class"))
    assert logs["l_sample"] == 0.0 and logs["infonce_skipped"] == 4.0
    _, logs = _losses(_davdd(ds, infonce_scope="class", factor=2))  # 4 decoded pairs per class: negatives exist
    assert logs["l_sample"] > 0 and logs["infonce_skipped"] == 0.0


def test_bank_cache_resume_and_manifest(tmp_path):
    ds = tiny_av()
    net = AVNetConfig(**NET)
    cfg = from_dict(BankConfig, {**BANK, "path": str(tmp_path / "bank")})
    bank = EncoderBank(ds, net, cfg)
    bank.ensure_decouplers(from_dict(DecouplerConfig, DEC))
    files = sorted(p.name for p in (tmp_path / "bank").iterdir())
    assert files.count("manifest.json") == 1 and sum(f.startswith("pair_") for f in files) == 4
    assert sum(f.startswith("decoupler_") for f in files) == 4
    man = json.loads((tmp_path / "bank" / "manifest.json").read_text())
    assert man["dataset"] == "tiny-av" and man["net"]["width"] == NET["width"] and len(man["data_fingerprint"]) == 64
    stamp = {f: os.stat(tmp_path / "bank" / f).st_mtime_ns for f in files}
    # cached: nothing is retrained
    EncoderBank(ds, net, cfg).ensure_decouplers(from_dict(DecouplerConfig, DEC))
    assert all(os.stat(tmp_path / "bank" / f).st_mtime_ns == t for f, t in stamp.items())
    # resume: a killed run lost pair 3 (seed 1) -> only seed 1's pairs are redone, seed 0's are kept
    (tmp_path / "bank" / "pair_003.safetensors").unlink()
    ref = EncoderBank(ds, net, cfg).load_encoders(2)
    EncoderBank(ds, net, cfg).ensure()
    assert os.stat(tmp_path / "bank" / "pair_000.safetensors").st_mtime_ns == stamp["pair_000.safetensors"]
    assert os.stat(tmp_path / "bank" / "pair_002.safetensors").st_mtime_ns != stamp["pair_002.safetensors"]
    again = EncoderBank(ds, net, cfg).load_encoders(2)
    assert all(torch.equal(p, q) for p, q in zip(ref.parameters(), again.parameters()))  # seeded: same weights
    # a bank trained on another dataset is refused, naming both
    other = tiny_av(noise=2.0, name="tiny-av-other")
    with pytest.raises(IntegrityError, match="trained on dataset 'tiny-av'.*not on 'tiny-av-other'"):
        EncoderBank(other, net, cfg).ensure()
    # another encoder architecture in the same directory is a config error
    with pytest.raises(ConfigError, match="field 'net'"):
        EncoderBank(ds, AVNetConfig(**{**NET, "width": 4}), cfg).ensure()
    # a tampered pair file is detected
    p = tmp_path / "bank" / "pair_001.safetensors"
    raw = bytearray(p.read_bytes())
    raw[-1] ^= 1
    p.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="pair 1 missing or its sha256"):
        EncoderBank(ds, net, cfg).load_encoders(1)


def test_davdd_resume_is_exact_including_ema_bank(tmp_path):
    ds = tiny_av()
    ref = run(_davdd(ds, factor=2), tmp_path / "ref", checkpoint_every=2, progress=False)
    d = tmp_path / "killed"
    run(_davdd(ds, factor=2), d, checkpoint_every=2, progress=False, stop_after=3)
    out = run(_davdd(ds, factor=2), d, checkpoint_every=2, progress=False, resume=True)
    for m in ("audio", "visual"):
        assert torch.equal(out.tensors[m], ref.tensors[m])
    state = torch.load(d / "checkpoint" / "state.pt", weights_only=False)["distiller"]
    assert state["proto"].shape == (4, 4, 2, DEC["dim"]) and bool(state["proto_seen"].any())


# ---------------------------------------------------------------- alternatives (issue 4 calibration)

ALL_OFF = {"use_private": False, "use_common": False, "use_proto": False, "use_infonce": False}


def test_fresh_pairs_build_no_bank_and_train_decouplers_online(tmp_path):
    ds = tiny_av()
    d = _davdd(ds, fresh_prob=1.0, fresh_decoupler_steps=3, bank={**BANK, "path": str(tmp_path / "bank")})
    total, logs = _losses(d)
    assert not (tmp_path / "bank").exists() and d.encoders == []  # fresh_prob 1: the bank is never built
    assert logs["fresh"] == 1.0 and logs["bank_pair"] == -1.0 and logs["l_align"] == 0.0  # no EMA space to align to
    assert all(logs[t] > 0 for t in ("l_private", "l_common", "l_sample")) and total.requires_grad
    # the online decoupler is trained on this iteration's real features: more steps -> lower decoupler loss
    from mmdistill.experts.bank import decoupler_loss

    feats = {m: [torch.randn(8, 32) + c for c in range(4)] for m in ("audio", "visual")}
    x = {m: torch.cat(v) for m, v in feats.items()}
    y = torch.arange(4).repeat_interleave(8)
    losses = []
    for steps in (0, 30):
        torch.manual_seed(0)
        d.cfg.fresh_decoupler_steps = steps
        dec = d.fresh_decoupler(feats)
        assert not any(p.requires_grad for p in dec.parameters())
        losses.append(float(decoupler_loss(dec, x, y, d.cfg.decoupler)[0]))
    assert losses[1] < 0.8 * losses[0]
    # mixed: some iterations fresh, some from the bank; the bank is built
    d2 = _davdd(ds, fresh_prob=0.5, bank={**BANK, "path": str(tmp_path / "bank2")})
    seed_everything(derive_seed(0, "init"))
    d2.init()
    fresh = []
    for it in range(8):
        seed_everything(derive_seed(0, "iter", it))
        fresh.append(d2.step(it)["fresh"])
    assert (tmp_path / "bank2" / "manifest.json").is_file() and 0 < sum(fresh) < 8
    with pytest.raises(ConfigError, match="fresh_prob"):
        _losses(_davdd(ds, fresh_prob=1.5))


def test_dm_term_with_everything_else_off_is_exactly_dm():
    """λ_dm on fresh pairs with all DAVDD terms off is DM (summed steps, same lr): same loss, same tensors."""
    ds = tiny_av()
    dm_cls = get_method("dm")
    common = {"batch_real": 8, "init": "real", "net": NET, "lr_audio": 0.5, "lr_visual": 0.5}
    dm = dm_cls(from_dict(dm_cls.Config, {**common, "iterations": 3, "step_mode": "summed"}, where="t"), ds, Budget(2, "ipc"), 0)
    dv = _davdd(ds, ipc=2, fresh_prob=1.0, lambda_dm=1.0, fresh_decoupler_steps=1, **common, **ALL_OFF)
    logs = []
    for d in (dm, dv):
        seed_everything(derive_seed(0, "init"))
        d.init()
        per = []
        for it in range(3):
            seed_everything(derive_seed(0, "iter", it))
            per.append(d.step(it))
        logs.append(per)
    for a, b in zip(*logs):
        assert b["l_dm"] == pytest.approx(a["loss"], rel=1e-5) and b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    for m in ("audio", "visual"):
        assert torch.allclose(torch.cat([t.detach() for t in dm.syn[m]]), torch.cat([t.detach() for t in dv.syn[m]]), atol=1e-6)


def test_dm_term_is_added_on_top_of_the_bank_terms():
    ds = tiny_av()
    _, base = _losses(_davdd(ds))
    total, logs = _losses(_davdd(ds, lambda_dm=2.0))
    assert logs["fresh"] == 0.0 and logs["l_dm"] > 0
    # same bank pair, same batches and augmentation: the DAVDD terms are unchanged, the DM term is added
    for t in ("l_private", "l_common", "l_sample", "l_align", "bank_pair"):
        assert logs[t] == pytest.approx(base[t], rel=1e-6), t
    assert logs["loss"] == pytest.approx(base["loss"] + 2.0 * logs["l_dm"], rel=1e-5)


def test_resume_is_exact_with_fresh_pairs_and_dm_term(tmp_path):
    ds = tiny_av()
    kw = {"fresh_prob": 0.5, "lambda_dm": 1.0, "fresh_decoupler_steps": 2}
    ref = run(_davdd(ds, **kw), tmp_path / "ref", checkpoint_every=2, progress=False)
    d = tmp_path / "killed"
    run(_davdd(ds, **kw), d, checkpoint_every=2, progress=False, stop_after=3)
    out = run(_davdd(ds, **kw), d, checkpoint_every=2, progress=False, resume=True)
    for m in ("audio", "visual"):
        assert torch.equal(out.tensors[m], ref.tensors[m])
    assert out.meta["bank"]["fresh_prob"] == 0.5 and out.meta["bank"]["lambda_dm"] == 1.0


# ---- the spec's remaining alternatives (§4.2 / §7.6; session 3): match form, term normalisation, align options


def test_alternative_fields_default_to_the_spec_reading():
    cfg = get_method("davdd").Config()
    assert (cfg.match_form, cfg.term_norm, cfg.align_distance, cfg.align_target) == ("mean", "none", "l2", "same")


def test_match_forms_and_normalisations():
    from mmdistill.distill.kernels import geodesic_gaussian_kernel, mmd2

    ds = tiny_av()
    g = torch.Generator().manual_seed(0)
    r, s = 3.0 * torch.randn(16, 8, generator=g) + 1.0, torch.randn(4, 8, generator=g)
    plain = ((r.mean(0) - s.mean(0)) ** 2).sum()
    assert torch.equal(_davdd(ds).match(r, s), plain)
    assert torch.equal(_davdd(ds).match(r, s, r.mean(0), s.mean(0)), plain)
    scale = r.pow(2).sum(1).mean()
    assert torch.allclose(_davdd(ds, term_norm="real_scale").match(r, s), plain / scale)
    ru, su = torch.nn.functional.normalize(r, dim=1), torch.nn.functional.normalize(s, dim=1)
    assert torch.allclose(_davdd(ds, term_norm="unit").match(r, s, r.mean(0), s.mean(0)), ((ru.mean(0) - su.mean(0)) ** 2).sum())
    ref = mmd2(r, s, lambda a, b: geodesic_gaussian_kernel(a, b, 0.3), unbiased=True)
    assert torch.allclose(_davdd(ds, match_form="mmd", mmd_sigma=0.3).match(r, s), ref)
    assert float(_davdd(ds, match_form="mmd").match(r, r[:4])) < float(_davdd(ds, match_form="mmd").match(r, s))
    with pytest.raises(ConfigError, match="mmd_sigma"):
        _losses(_davdd(ds, mmd_sigma=0.0))


def test_alternatives_change_their_terms_only():
    ds = tiny_av()
    _, base = _losses(_davdd(ds))
    for kw, changed in [({"match_form": "mmd"}, ("l_private", "l_common")), ({"term_norm": "real_scale"}, ("l_private", "l_common", "l_align")),
                        ({"term_norm": "unit"}, ("l_private", "l_common")), ({"align_distance": "cosine"}, ("l_align",))]:
        total, logs = _losses(_davdd(ds, **kw))
        assert total.requires_grad and torch.isfinite(total)
        for t in ("l_private", "l_common", "l_sample", "l_align"):
            if t in changed:
                assert logs[t] != pytest.approx(base[t], rel=1e-4), (kw, t)
            else:
                assert logs[t] == pytest.approx(base[t], rel=1e-6), (kw, t)
    # cosine align is bounded by 2 per class and modality
    _, cos = _losses(_davdd(ds, align_distance="cosine"))
    assert 0 <= cos["l_align"] <= 2 * 2 * 4


def test_cross_align_target_uses_the_other_modality_prototype():
    ds = tiny_av()
    d = _davdd(ds, align_target="cross", use_private=False, use_infonce=False, eta_intermodal=0.0)
    _, cross = _losses(d)
    # first visit sets π = the real common means, so cross-align = Σ ‖mean c_a^s − mean c_v^r‖² + ‖mean c_v^s − mean c_a^r‖²,
    # i.e. the intermodal η term of L_common: compare with η = 1 and align off
    _, eta = _losses(_davdd(ds, use_private=False, use_infonce=False, use_proto=False, eta_intermodal=1.0))
    _, com = _losses(_davdd(ds, use_private=False, use_infonce=False, use_proto=False, eta_intermodal=0.0))
    assert cross["l_align"] == pytest.approx(eta["l_common"] - com["l_common"], rel=1e-5)
    _, same = _losses(_davdd(ds, use_private=False, use_infonce=False, eta_intermodal=0.0))
    assert same["l_align"] == pytest.approx(com["l_common"], rel=1e-5)
