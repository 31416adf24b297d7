"""``precision: bf16``: one step of each family under bfloat16 autocast stays within a stated tolerance of fp32.

bf16 keeps 8 significant bits (relative rounding 2^-9 ≈ 2e-3 per operation), and an update of the learned tensors
is a difference of gradients through a few layers, so its error is far larger than one operation's. Measured on
these tiny shapes with CPU autocast (``MMDISTILL_BF16_ON_CPU=1``), relative error ‖bf16 − fp32‖ / ‖fp32‖ of the
update after one outer iteration (worst of 3 draws and both modalities), and the tolerance each test states:

==========================================  ===========  =========
family / quantity                           measured     tolerance
==========================================  ===========  =========
DM / AVDD (AV mean matching) update         ≤ 0.08       0.2
MTT-VL (unrolled, 3 student steps) update   ≤ 0.14       0.3
TESLA-VL (constant memory) update           ≤ 0.15       0.3
LoRS / RepBlend update                      ≤ 0.16       0.3
trajectory matching loss                    ≤ 0.011      0.03
MDM (teacher embeddings, GKE + NCE) update  ≤ 0.09       0.2
evaluation metrics (tiny, 30 steps)         ≤ 2 samples  4 samples
==========================================  ===========  =========

Not bounded: the update of the learned step sizes (its gradient is a sum over all student parameters of
adjoint × gradient, where bf16 rounding does not average out): measured up to 0.9 relative in RepBlend. With
learned step sizes (``learn_lr``), bf16 changes how they move; compare against fp32 before relying on it.

A relative error of 0.15 is a cosine of about 0.99 between the bf16 and the fp32 update. The tests take the
`device` fixture: on CUDA they compare bf16 with fp32 on the GPU (autocast runs there without the switch).
fp32 parity across devices is tests/test_gpu_parity.py.
"""

from __future__ import annotations

import pytest
import torch

from mmdistill.config import from_dict
from mmdistill.errors import ConfigError
from mmdistill.precision import CPU_SWITCH, autocast, autocast_active, check_precision

import test_gpu_parity as par

TOL_AV, TOL_TM, TOL_MDM, TOL_LOSS = 0.2, 0.3, 0.2, 0.03


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def test_switches(monkeypatch):
    monkeypatch.delenv(CPU_SWITCH, raising=False)
    assert not autocast_active("fp32", "cpu") and not autocast_active("bf16", "cpu")
    assert autocast_active("bf16", "cuda") and not autocast_active("fp32", "cuda")
    monkeypatch.setenv(CPU_SWITCH, "1")
    assert autocast_active("bf16", "cpu") and not autocast_active("fp32", "cpu")
    with autocast("bf16", "cpu"):
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="fp16"):
        check_precision("fp16")


def test_bad_precision_is_refused():
    from mmdistill.distill import get_method
    from mmdistill.evaluate.retrieval import RetrievalProtocol

    with pytest.raises(ConfigError, match="precision"):
        from_dict(RetrievalProtocol, {"precision": "half"})
    with pytest.raises(ConfigError, match="common protocol"):
        from_dict(RetrievalProtocol, {"precision": "bf16", "protocol": "paper"})
    with pytest.raises(ConfigError, match="precision"):
        par._av("dm", "cpu", precision="fp8")
    with pytest.raises(ConfigError, match="not implemented"):
        par._av("davdd", "cpu", precision="bf16", fresh_prob=1.0)


def test_bf16_on_cpu_is_fp32_without_the_switch(monkeypatch, tmp_path):
    monkeypatch.delenv(CPU_SWITCH, raising=False)
    a = par._updates("dm", "cpu", tmp_path / "a")
    b = par._updates("dm", "cpu", tmp_path / "b", precision="bf16")
    assert all(torch.equal(a[m], b[m]) for m in a)


def _both(fn, monkeypatch):
    """fn() in fp32, then with the CPU bf16 switch on (fn takes the precision)."""
    monkeypatch.setenv(CPU_SWITCH, "1")
    return fn("fp32"), fn("bf16")


@pytest.mark.parametrize("method", ["dm", "avdd"])
def test_av_step(device, monkeypatch, tmp_path, method):
    ref, got = _both(lambda p: par._updates(method, device, tmp_path / p, iterations=1, precision=p), monkeypatch)
    for m in ref:
        assert not torch.equal(ref[m], got[m]), "bf16 changed nothing: autocast did not run"
        par.assert_close(got[m], ref[m], TOL_AV, f"{method} bf16 {m} update")


@pytest.mark.parametrize("name", ["mtt-vl", "tesla-vl", "lors", "repblend"])
def test_trajectory_step(device, monkeypatch, vl_buffers, name):
    ref, got = _both(lambda p: par._vl_iteration(name, device, vl_buffers, precision=p), monkeypatch)
    assert got[0]["match_loss"] == pytest.approx(ref[0]["match_loss"], rel=TOL_LOSS)
    for k in ("image", "text"):  # the learned step sizes: see the module docstring
        par.assert_close(got[1][k], ref[1][k], TOL_TM, f"{name} bf16 {k} update")


def test_mdm_step(device, monkeypatch, vl_buffers):
    def one(p):
        d = par._mdm(device, vl_buffers)
        d.cfg.precision = p
        torch.manual_seed(5)
        theta, _ = d.teacher()
        x0 = d.export()
        logs = d.apply(theta, torch.randperm(len(d.dataset))[:16], torch.randperm(d.n)[:6].to(device))
        x1 = d.export()
        return logs, {m: x1.tensors[m] - x0.tensors[m] for m in x1.tensors}

    ref, got = _both(one, monkeypatch)
    assert got[0]["match_loss"] == pytest.approx(ref[0]["match_loss"], rel=TOL_LOSS)
    for m in ref[1]:
        par.assert_close(got[1][m], ref[1][m], TOL_MDM, f"mdm bf16 {m} update")


def test_evaluation(device, monkeypatch):
    from mmdistill.evaluate.classification import ClassificationProtocol, train_and_test

    tr, te = par.tiny_av("train", per_class=6), par.tiny_av("test", per_class=10)
    mods = ("audio", "visual")

    def one(p):
        proto = from_dict(ClassificationProtocol, {"width": 8, "depth": 2, "epochs": 2, "min_steps": 30, "seeds": [0],
                                                   "precision": p})
        return train_and_test(proto, {m: tr.tensors[m] for m in mods}, tr.labels, {m: te.tensors[m] for m in mods},
                              te.labels, 4, 0, device=device)

    ref, got = _both(one, monkeypatch)
    step = 100.0 / te.labels.numel()
    for k in ref:
        assert abs(got[k] - ref[k]) <= 4 * step + 1e-9, f"{k}: bf16 {got[k]} vs fp32 {ref[k]}"
    assert "precision" not in from_dict(ClassificationProtocol, {}).describe(10)
    assert from_dict(ClassificationProtocol, {"precision": "bf16"}).describe(10)["precision"] == "bf16"


vl_buffers = par.vl_buffers
