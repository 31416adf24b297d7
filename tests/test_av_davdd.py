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
