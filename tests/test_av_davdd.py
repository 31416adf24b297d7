"""DAVDD (arXiv 2511.17890): raw private features, common terms zero at synthetic = real, ablation switches,
pairing-dependent contrastive objective, bank composition/cache/resume, determinism, an end-to-end run."""

import json
import os

import pytest
import torch
import torch.nn.functional as F

from av_fixtures import NET, tiny_av
from mmdistill.config import from_dict
from mmdistill.data.paired import PairedDataset
from mmdistill.distill import get_method
from mmdistill.distill.base import Budget, run
from mmdistill.distill.davdd import intermodal_cosine_gap
from mmdistill.errors import ConfigError, IntegrityError
from mmdistill.experts.bank import (BankConfig, Decoupler, DecouplerConfig, EncoderBank, decoupler_loss, info_nce,
                                    sup_con)
from mmdistill.distill.av_common import AVNetConfig
from mmdistill.seed import derive_seed, seed_everything

BANK = {"num_seeds": 2, "snapshot_epochs": [1, 2], "batch_size": 32}
DEC = {"hidden": 16, "dim": 8, "epochs": 2, "batch_size": 32}
TERMS = ["l_private", "l_common", "l_intermodal", "l_sample", "l_align"]


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _davdd(ds, ipc=1, **kw):
    cls = get_method("davdd")
    params = {"iterations": 4, "batch_real": 8, "init": "real", "factor": 1, "net": NET, "bank": dict(BANK),
              "decoupler": dict(DEC), **kw}
    return cls(from_dict(cls.Config, params, where="test"), ds, Budget(ipc, "ipc"), 0)


def _losses(d):
    seed_everything(derive_seed(0, "init"))
    d.init()
    seed_everything(derive_seed(0, "iter", 0))
    return d.losses(0)


def _instance_av(classes=3, per_class=16):
    """Instance-paired: audio and visual of pair i share a per-instance latent (plus their class)."""
    g = torch.Generator().manual_seed(5)
    lab = torch.arange(classes).repeat_interleave(per_class)
    lat = torch.randn(lab.numel(), 1, 16, 16, generator=g) + lab.view(-1, 1, 1, 1).float()
    a = lat + 0.3 * torch.randn(lat.shape, generator=g)
    v = lat.flip(-1) + 0.3 * torch.randn(lat.shape, generator=g)
    return PairedDataset(name="tiny-inst", split="train", task="classification", tensors={"audio": a, "visual": v},
                         labels=lab, class_names=[str(c) for c in range(classes)], meta={"params": {}},
                         pairing="instance")


def _set_syn_to(d, real_by_class):
    with torch.no_grad():
        for m in ("audio", "visual"):
            for c, t in enumerate(d.syn[m]):
                t.copy_(real_by_class[c][m])


def test_every_term_is_nonzero_and_each_switch_removes_its_term():
    ds = tiny_av()
    total, logs = _losses(_davdd(ds))
    assert all(logs[t] > 0 for t in TERMS), logs
    assert total.requires_grad and logs["loss"] == pytest.approx(sum(logs[t] for t in TERMS), rel=1e-5)
    switches = {"no_private": "l_private", "no_common": "l_common", "no_intermodal": "l_intermodal",
                "no_infonce": "l_sample", "no_prototypes": "l_align"}
    for flag, term in switches.items():
        _, l2 = _losses(_davdd(ds, **{flag: True}))
        assert l2[term] == 0.0
        assert all(l2[t] > 0 for t in TERMS if t != term), (flag, l2)
        assert l2["loss"] == pytest.approx(sum(l2[t] for t in TERMS), rel=1e-5)  # all weights 1
    _, w = _losses(_davdd(ds, lambda_private=0.5, lambda_intermodal=3.0))
    assert w["loss"] == pytest.approx(logs["loss"] + (0.5 - 1) * logs["l_private"] + 2.0 * logs["l_intermodal"], rel=1e-5)


def test_private_term_matches_raw_encoder_output():
    ds = tiny_av()
    d = _davdd(ds, no_common=True, no_intermodal=True, no_infonce=True, no_prototypes=True)
    seed_everything(derive_seed(0, "init"))
    d.init()
    seed_everything(derive_seed(0, "iter", 0))
    _, logs = d.losses(0)
    # recompute by hand with the same RNG stream: pair draw, then per class (aug, real batch)
    seed_everything(derive_seed(0, "iter", 0))
    k = int(torch.randint(len(d.encoders), ()))
    enc, want = d.encoders[k], 0.0
    for c in range(d.num_classes):
        aug = d.draw_aug()
        real, syn = d.real_batch(c), d.syn_batch(c)
        for m in ("audio", "visual"):
            fr = enc[m].embed(d.dsa(real[m], m, aug)).mean(0)
            fs = enc[m].embed(d.dsa(syn[m], m, aug)).mean(0)
            want += float(((fr - fs) ** 2).sum().detach())
    assert logs["l_private"] == pytest.approx(want, rel=1e-5) and logs["loss"] == pytest.approx(want, rel=1e-5)
    assert logs["bank_pair"] == k
    assert not any(n.startswith("private") for n in d.decouplers[0].state_dict())  # no learned private head


def test_common_and_intermodal_terms_vanish_when_synthetic_equals_real():
    ds = tiny_av()
    d = _davdd(ds, ipc=8, batch_real=8, dsa={"enabled": False}, no_infonce=True, no_prototypes=True)
    seed_everything(derive_seed(0, "init"))
    d.init()
    # the real batch each class draws at iteration 0 (batch_real = class size... drawn with the same RNG stream)
    seed_everything(derive_seed(0, "iter", 0))
    int(torch.randint(len(d.encoders), ()))
    reals = []
    for c in range(d.num_classes):
        d.draw_aug()
        reals.append(d.real_batch(c))
        d.syn_batch(c)
    _set_syn_to(d, reals)
    seed_everything(derive_seed(0, "iter", 0))
    _, logs = d.losses(0)
    assert logs["l_common"] < 1e-10 and logs["l_intermodal"] < 1e-10 and logs["l_private"] < 1e-8, logs
    # the cosine gap is zero at equality, but a Euclidean audio-visual distance would not be
    a, v = torch.randn(8), torch.randn(8)
    assert float(intermodal_cosine_gap(a, v, a, v)) == 0.0 and float(intermodal_cosine_gap(a, v, a, -v)) > 0


def test_pairing_selects_infonce_or_supervised_contrastive():
    za, zv = torch.randn(6, 4), torch.randn(6, 4)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    assert float(sup_con(za, zv, torch.arange(6), 0.1)) == pytest.approx(float(info_nce(za, zv, 0.1)), rel=1e-6)
    assert float(sup_con(za, zv, y, 0.1)) != pytest.approx(float(info_nce(za, zv, 0.1)), rel=1e-3)
    # same-class pairs are positives: identical within-class features give a lower sup_con than InfoNCE
    z = F.one_hot(y, 3).float()
    assert float(sup_con(z, z, y, 0.1)) < float(info_nce(z, z, 0.1))
    # the decoupler's loss and the sample term follow the pairing
    feats = {"audio": torch.randn(6, 5), "visual": torch.randn(6, 5)}
    dec = Decoupler({"audio": 5, "visual": 5}, from_dict(DecouplerConfig, DEC))
    for obj, fn in (("instance", lambda a, v: info_nce(a, v, 0.07)), ("label", lambda a, v: sup_con(a, v, y, 0.07))):
        cfg = from_dict(DecouplerConfig, {**DEC, "objective": obj})
        loss, _ = decoupler_loss(dec, feats, y, cfg)
        want = fn(dec.common["audio"](feats["audio"]), dec.common["visual"](feats["visual"]))
        assert float(loss.detach()) == pytest.approx(float(want.detach()), rel=1e-6)
    assert _davdd(tiny_av()).dataset.pairing == "instance"  # the tiny fixture's default
    lab = tiny_av()
    lab.pairing = "label"
    d = _davdd(lab)
    _losses(d)
    assert d.objective == "label" and d.dec_cfg.objective == "label"
    d2 = _davdd(lab, pairing="instance")
    _losses(d2)
    assert d2.objective == "instance"


def test_instance_paired_dataset_runs_end_to_end(tmp_path):
    ds = _instance_av()
    d = _davdd(ds, factor=2, bank={**BANK, "path": str(tmp_path / "bank")})
    out = run(d, tmp_path / "run", checkpoint_every=10, progress=False)
    assert d.objective == "instance" and out.meta["bank"]["objective"] == "instance"
    assert out.tensors["audio"].shape == (3, 1, 16, 16) and out.meta["layout"]["factor"] == 2
    man = json.loads((tmp_path / "bank" / "manifest.json").read_text())
    (entry,) = man["decouplers"].values()
    assert entry["config"]["objective"] == "instance"


def test_bank_composition_is_seeds_by_snapshots_and_reports_cost(tmp_path):
    ds = tiny_av()
    cfg = from_dict(BankConfig, {"num_seeds": 3, "snapshot_epochs": [1, 2], "batch_size": 32, "path": str(tmp_path / "b")})
    bank = EncoderBank(ds, AVNetConfig(**NET), cfg)
    assert bank.pair_plan() == [(0, 1), (0, 2), (1, 1), (1, 2), (2, 1), (2, 2)] and cfg.size == 6
    dcfg = from_dict(DecouplerConfig, DEC)
    bank.ensure_decouplers(dcfg)
    rep = bank.report(dcfg)
    assert rep["pairs"] == 6 and rep["encoders_train_s"] > 0 and rep["decouplers_train_s"] > 0
    assert rep["encoders_bytes"] == sum(p.stat().st_size for p in (tmp_path / "b").glob("pair_*"))
    # distinct seeds and snapshots give distinct encoders
    w = [next(bank.load_encoders(k)["audio"].parameters()).flatten()[:20] for k in range(6)]
    assert all(not torch.equal(w[i], w[j]) for i in range(6) for j in range(i + 1, 6))
    # random-bank ablation: epoch-0 encoders, same number of seeds
    d = _davdd(ds, random_bank=True, bank={**BANK, "path": str(tmp_path / "r")})
    _losses(d)
    assert d.bank_cfg.pretrained is False and {p["epoch"] for p in json.loads(
        (tmp_path / "r" / "manifest.json").read_text())["pairs"].values()} == {0}
    with pytest.raises(ConfigError, match="random_bank"):
        _losses(_davdd(ds, bank={**BANK, "pretrained": False}))


def test_fresh_pairs_carry_only_the_private_term(tmp_path):
    ds = tiny_av()
    d = _davdd(ds, fresh_prob=1.0, bank={**BANK, "path": str(tmp_path / "bank")})
    _, logs = _losses(d)
    assert not (tmp_path / "bank").exists() and d.encoders == []
    assert logs["bank_pair"] == -1 and logs["l_private"] > 0
    assert all(logs[t] == 0.0 for t in TERMS if t != "l_private")
    with pytest.raises(ConfigError, match="fresh_prob"):
        _losses(_davdd(ds, fresh_prob=1.5))


def test_determinism_same_seed_same_set(tmp_path):
    ds = tiny_av()
    a = run(_davdd(ds, fresh_prob=0.5), tmp_path / "a", checkpoint_every=10, progress=False)
    b = run(_davdd(ds, fresh_prob=0.5), tmp_path / "b", checkpoint_every=10, progress=False)
    for m in ("audio", "visual"):
        assert torch.equal(a.tensors[m], b.tensors[m])
    init = run(_davdd(ds, iterations=0), tmp_path / "init", checkpoint_every=10, progress=False)
    assert all(not torch.equal(a.tensors[m], init.tensors[m]) for m in ("audio", "visual"))


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


