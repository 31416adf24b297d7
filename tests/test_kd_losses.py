"""Golden values (hand-computed on tiny tensors) and identities of every KD loss (cross-modal-kd.md §6)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmdistill.errors import ConfigError
from mmdistill.kd.base import Dims, KDInputs
from mmdistill.kd.c2kd import C2KD, C2KDConfig, kendall_tau_b, non_target_kl
from mmdistill.kd.feature_losses import feat_mse, pkd_mse
from mmdistill.kd.logit_losses import dist_terms, dkd_terms, kd_kl
from mmdistill.kd.registry import get_kd_loss, kd_method_names, resolve_method

LN3, LN2 = math.log(3.0), math.log(2.0)




def test_registry_names_and_variants():
    assert set(kd_method_names()) >= {"no-kd", "kd", "dkd", "dist", "fitnet", "pkd", "c2kd", "fd-cmkd"}
    assert resolve_method("fd-cmkd-heads-only") == ("fd-cmkd", {"lambda_low": 0.0, "lambda_high": 0.0})
    with pytest.raises(ConfigError):
        resolve_method("nope")


def test_kd_golden_and_temperature():
    # p_t = (3/4, 1/4), p_s = (1/2, 1/2): KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.130812
    zs = torch.zeros(1, 2)
    assert kd_kl(zs, torch.tensor([[LN3, 0.0]]), 1.0).item() == pytest.approx(0.130812, abs=1e-5)
    # same probabilities at tau 2, times tau^2 = 4
    assert kd_kl(zs, torch.tensor([[2 * LN3, 0.0]]), 2.0).item() == pytest.approx(4 * 0.130812, abs=1e-5)


def test_kd_zero_when_logits_equal():
    z = torch.randn(5, 7)
    assert kd_kl(z, z.clone(), 4.0).abs().item() < 1e-6
    cls = get_kd_loss("kd")
    loss = cls(cls.Config(), Dims(), 7)
    y = torch.randint(0, 7, (5,))
    out = loss(KDInputs(s_logits=z, t_logits=z.clone(), y=y))
    assert out["kd"].abs().item() < 1e-6


def test_dkd_golden():
    zs = torch.zeros(1, 3)
    y = torch.tensor([0])
    # teacher (1/2, 1/4, 1/4): binary (1/2, 1/2) vs student (1/3, 2/3); non-target parts equal -> NCKD 0
    tckd, nckd = dkd_terms(zs, torch.tensor([[LN2, 0.0, 0.0]]), y, 1.0)
    assert tckd.item() == pytest.approx(0.5 * math.log(1.5) + 0.5 * math.log(0.75), abs=1e-5)
    assert nckd.item() == pytest.approx(0.0, abs=1e-6)
    # teacher (1/5, 3/5, 1/5): TCKD = .2 ln .6 + .8 ln 1.2; NCKD = KL((3/4, 1/4) || (1/2, 1/2)) = 0.130812
    tckd, nckd = dkd_terms(zs, torch.tensor([[0.0, LN3, 0.0]]), y, 1.0)
    assert tckd.item() == pytest.approx(0.2 * math.log(0.6) + 0.8 * math.log(1.2), abs=1e-5)
    assert nckd.item() == pytest.approx(0.130812, abs=1e-5)
    # DKD warm-up scales both terms
    cls = get_kd_loss("dkd")
    loss = cls(cls.Config(warmup_epochs=4), Dims(), 3)
    zt = torch.tensor([[0.0, LN3, 0.0]])
    o0 = loss(KDInputs(zs, zt, y, epoch=0))
    o3 = loss(KDInputs(zs, zt, y, epoch=3))
    assert o0["nckd"].item() == pytest.approx(o3["nckd"].item() / 4, rel=1e-5)


def test_dist_golden():
    # C = 2: the Pearson r of two rows is the sign agreement; row 1 agrees, row 2 disagrees -> inter = 1;
    # both columns decrease over the batch in student and teacher -> intra = 0
    zs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    zt = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    inter, intra = dist_terms(zs, zt, 1.0)
    assert inter.item() == pytest.approx(1.0, abs=1e-5)
    assert intra.item() == pytest.approx(0.0, abs=1e-5)
    z = torch.randn(6, 5)
    inter, intra = dist_terms(z, z.clone(), 1.0)
    assert inter.item() == pytest.approx(0.0, abs=1e-5) and intra.item() == pytest.approx(0.0, abs=1e-5)


def test_fitnet_golden_and_projector():
    assert feat_mse(torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2)).item() == pytest.approx(2.5)
    cls = get_kd_loss("fitnet")
    same = cls(cls.Config(), Dims(s_feat=4, t_feat=4), 3)
    assert isinstance(same.proj, nn.Identity)
    diff = cls(cls.Config(), Dims(s_feat=4, t_feat=6), 3)
    assert isinstance(diff.proj, nn.Linear) and diff.proj.weight.shape == (6, 4)
    out = diff(KDInputs(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 1]), s_feat=torch.randn(2, 4),
                        t_feat=torch.randn(2, 6)))
    out["feat"].backward()
    assert diff.proj.weight.grad is not None


def test_pkd_golden_and_affine_invariance():
    # standardised (1, 3) -> (-1, 1); (5, 1) -> (1, -1): MSE = 4
    assert pkd_mse(torch.tensor([[1.0], [3.0]]), torch.tensor([[5.0], [1.0]])).item() == pytest.approx(4.0, abs=1e-4)
    g = torch.Generator().manual_seed(0)
    fs, ft = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    a = torch.rand(8, generator=g) * 5 + 0.1  # positive per-channel scale
    b = torch.randn(8, generator=g) * 3
    assert pkd_mse(fs, ft * a + b).item() == pytest.approx(pkd_mse(fs, ft).item(), rel=1e-4)
    # maps: per-channel affine over (B, H, W)
    ms, mt = torch.randn(4, 3, 5, 5, generator=g), torch.randn(4, 3, 5, 5, generator=g)
    a4, b4 = a[:3].view(1, 3, 1, 1), b[:3].view(1, 3, 1, 1)
    assert pkd_mse(ms, mt * a4 + b4).item() == pytest.approx(pkd_mse(ms, mt).item(), rel=1e-4)


def test_kendall_golden():
    a = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [1.0, 1.0, 2.0]])
    b = torch.tensor([[1.0, 3.0, 2.0], [3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    tau = kendall_tau_b(a, b)
    assert tau.tolist() == pytest.approx([1 / 3, -1.0, 2 / math.sqrt(6)], abs=1e-6)
    scipy_stats = pytest.importorskip("scipy.stats")
    x, z = torch.randn(4, 9), torch.randn(4, 9)
    ref = [scipy_stats.kendalltau(x[i].numpy(), z[i].numpy()).statistic for i in range(4)]
    assert kendall_tau_b(x, z).tolist() == pytest.approx(ref, abs=1e-5)


def test_non_target_kl_golden_and_mask():
    # u_nt = (0,0,0); v = (5, ln3, 0), y = 0 -> v_nt = (0, ln3, 0) -> p = (1/5, 3/5, 1/5) vs uniform
    u, v, y = torch.zeros(1, 3), torch.tensor([[5.0, LN3, 0.0]]), torch.tensor([0])
    want = 0.4 * math.log(0.6) + 0.6 * math.log(1.8)
    assert non_target_kl(u, v, y, torch.ones(1)).item() == pytest.approx(want, abs=1e-5)
    assert non_target_kl(u, v, y, torch.zeros(1)).item() == 0.0


def test_c2kd_nt_zero_when_rankings_disagree_and_ignores_target():
    cls = get_kd_loss("c2kd")
    torch.manual_seed(0)
    loss = cls(C2KDConfig(krc=1.0), Dims(s_mid=4, t_mid=5), 6)  # tau > 1 never holds: every m_i = 0
    inp = KDInputs(torch.randn(8, 6), torch.randn(8, 6), torch.randint(0, 6, (8,)), s_mid=torch.randn(8, 4),
                   t_mid=torch.randn(8, 5, 3, 3))
    out = loss(inp)
    assert out["nt_s"].item() == 0.0 and out["nt_t"].item() == 0.0
    # the NT term does not depend on the target logit of either side
    u, v, y = torch.randn(5, 6), torch.randn(5, 6), torch.randint(0, 6, (5,))
    m = torch.ones(5)
    base = non_target_kl(u, v, y, m)
    u2, v2 = u.clone(), v.clone()
    u2[torch.arange(5), y] += 7.0
    v2[torch.arange(5), y] -= 3.0
    assert non_target_kl(u2, v2, y, m).item() == pytest.approx(base.item(), abs=1e-6)
    assert non_target_kl(u2, v2, y, m, mask_value=None).item() == pytest.approx(
        non_target_kl(u, v, y, m, mask_value=None).item(), abs=1e-6)


@pytest.mark.parametrize("c", [6, 28, 50])
def test_c2kd_shapes(c):
    loss = C2KD(C2KDConfig(), Dims(s_mid=8, t_mid=16), c)
    out = loss(KDInputs(torch.randn(4, c), torch.randn(4, c), torch.randint(0, c, (4,)),
                        s_mid=torch.randn(4, 8, 2, 2), t_mid=torch.randn(4, 16)))
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())
    assert 0.0 <= loss.last_agree <= 1.0


def test_c2kd_teacher_is_trained():
    torch.manual_seed(0)
    teacher_body, teacher_head = nn.Linear(5, 8), nn.Linear(8, 3)
    student_body, student_head = nn.Linear(4, 8), nn.Linear(8, 3)
    loss = C2KD(C2KDConfig(), Dims(s_mid=8, t_mid=8), 3)
    params = [*teacher_body.parameters(), *teacher_head.parameters(), *student_body.parameters(),
              *student_head.parameters(), *loss.parameters()]
    opt = torch.optim.SGD(params, lr=0.1)
    before = teacher_body.weight.detach().clone()
    xt, xs, y = torch.randn(6, 5), torch.randn(6, 4), torch.randint(0, 3, (6,))
    ht, hs = teacher_body(xt), student_body(xs)
    out = loss(KDInputs(student_head(hs), teacher_head(ht), y, s_mid=hs, t_mid=ht))
    sum(out.values()).backward()
    opt.step()
    assert not torch.equal(before, teacher_body.weight.detach())
