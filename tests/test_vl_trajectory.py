"""Trajectory matching: the constant-memory reverse-mode gradient equals the unrolled one."""

import pytest
import torch

from mmdistill.losses.contrastive import info_nce, wbce
from mmdistill.losses.learned_similarity import Similarity
from mmdistill.distill.trajectory import match_loss, trajectory_match
from mmdistill.experts.model import FlatDualEncoder, VLNetConfig, build_model


def _problem(mode: str, dtype=torch.float64, blend: bool = False, soft: bool = True):
    torch.manual_seed(0)
    m = build_model(VLNetConfig(width=4, depth=2, embed_dim=8, text_hidden=16), (3, 8, 8), 6).to(dtype)
    f = FlatDualEncoder(m, mode)
    th0 = f.flat()
    target = th0 + 0.02 * torch.randn_like(th0)
    x = torch.randn(10, 3, 8, 8, dtype=dtype, requires_grad=True)
    t = torch.randn(10, 6, dtype=dtype, requires_grad=True)
    sim = Similarity.init(10, "lowrank", rank=2, alpha=1.0)
    sim.tensors = {k: v.to(dtype) for k, v in sim.tensors.items()}
    sim.tensors["R"] = 0.1 * torch.randn(10, 2, dtype=dtype)
    sim.requires_grad_()
    etas = [torch.tensor([0.1], dtype=dtype, requires_grad=True), torch.tensor([0.05], dtype=dtype, requires_grad=True)]
    batches = [torch.randperm(10)[:5] for _ in range(4)]
    mix = [(float(torch.rand(())), torch.randperm(5)) for _ in batches]

    def data():
        d = {"text": t, **{f"sim_{k}": v for k, v in sim.tensors.items()}}
        d["image"] = x if mode == "full" else f.encode_frozen(x)
        return d

    def inner(theta, idx, step, d):
        img, txt = d["image"][idx], d["text"][idx]
        if blend:
            lam, perm = mix[step]
            img, txt = lam * img + (1 - lam) * img[perm], lam * txt + (1 - lam) * txt[perm]
        logits = f.logits(theta, img, txt)
        if not soft:
            return info_nce(logits)
        return wbce(logits, sim.block_from({k[4:]: v for k, v in d.items() if k.startswith("sim_")}, idx))

    def grads(gm):
        d = data()
        r = trajectory_match(gm, inner, th0, target, batches, etas, d, f.sizes)
        leaves = {}
        for k, v in d.items():  # push feature gradients to the pixels (heads mode)
            if v.grad_fn is not None:
                leaves["pixels"] = torch.autograd.grad(v, x, r.data_grads[k])[0]
            else:
                leaves[k] = r.data_grads[k]
        return r, leaves

    return grads


@pytest.mark.parametrize("mode,blend,soft", [("full", False, False), ("full", False, True), ("heads", True, True)])
def test_reverse_mode_equals_unrolled(mode, blend, soft):
    grads = _problem(mode, blend=blend, soft=soft)
    ru, gu = grads("unrolled")
    rr, gr = grads("reverse")
    assert ru.loss == pytest.approx(rr.loss, rel=1e-10)
    assert set(gu) == set(gr) and ("image" in gu or "pixels" in gu) and "text" in gu
    for k in gu:
        if soft or not k.startswith("sim_"):
            assert gu[k].abs().sum() > 0, k
        torch.testing.assert_close(gr[k], gu[k], rtol=1e-4, atol=1e-10)
    for a, b in zip(ru.eta_grads, rr.eta_grads):
        assert a.abs().sum() > 0
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-10)


def test_reverse_mode_float32_relative_error():
    grads = _problem("full", dtype=torch.float32)
    _, gu = grads("unrolled")
    _, gr = grads("reverse")
    for k in gu:
        assert float((gu[k] - gr[k]).norm() / gu[k].norm()) < 1e-4, k


def test_tesla_is_an_approximation():
    grads = _problem("full")
    _, gu = grads("unrolled")
    rt, gt = grads("tesla")
    rel = float((gu["image"] - gt["image"]).norm() / gu["image"].norm())
    assert rel > 1e-3  # drops the Hessian terms that carry the adjoint back through later steps


def test_match_loss_branches():
    start, target = torch.zeros(5), torch.ones(5)
    theta = torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0])
    # image branch: 2 params; text: 3 params
    per = match_loss(theta, start, target, (2, 3))
    assert float(per) == pytest.approx(0.25 + 1.0)
    merged = match_loss(theta, start, target, (2, 3), merge=True)
    assert float(merged) == pytest.approx((0.5 + 3.0) / 5.0)
