"""FD-CMKD: the FFT band split (shared module) and the loss — cross-modal-kd.md §6.2 unit tests 1-7 + golden values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmdistill.kd.base import Dims, KDInputs
from mmdistill.kd.fd_cmkd import FDCMKD, FDCMKDConfig, fd_losses
from mmdistill.kd.fft_bands import band_masks, cut_index, signed_log1p, soft_band_masks, split_bands




@pytest.mark.parametrize("d", [512, 37, 4])
def test_bands_sum_to_centred_feature_and_are_zero_mean(d):  # tests 1, 2 and 6
    f = torch.randn(5, d, dtype=torch.float64)
    low, high = split_bands(f)
    assert low.shape == (5, d) and high.shape == (5, d)
    torch.testing.assert_close(low + high, f - f.mean(1, keepdim=True))
    assert low.mean(1).abs().max() < 1e-12 and high.mean(1).abs().max() < 1e-12


def test_masks_match_the_code():
    low, high = band_masks(512)
    assert cut_index(512, 0.5) == 128 and low.shape == (257,)
    assert low[0] == 0 and high[0] == 0
    assert low[1:129].eq(1).all() and low[129:].eq(0).all() and high[129:].eq(1).all() and high[:129].eq(0).all()
    low_dc, _ = band_masks(512, keep_dc=True)
    assert low_dc[0] == 1
    f = torch.randn(3, 512, dtype=torch.float64)
    lo, hi = split_bands(f, keep_dc=True)
    torch.testing.assert_close(lo + hi, f)


def test_band_golden_d4():
    # D = 4, K = 3, c = 1: low = bin 1, high = bin 2 (Nyquist); f = (1,0,0,0) has F1 = F2 = 1
    low, high = split_bands(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    torch.testing.assert_close(low, torch.tensor([[0.5, 0.0, -0.5, 0.0]]))
    torch.testing.assert_close(high, torch.tensor([[0.25, -0.25, 0.25, -0.25]]))


def test_loss_golden_d4():
    s, t = torch.tensor([[1.0, 0.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    lm, hm = band_masks(4)
    out = fd_losses(s, t, lm, hm)
    # normalised lows (1,0,-1,0)/sqrt2 and (0,1,0,-1)/sqrt2: mean sq diff = 2/4
    assert out["low"].item() == pytest.approx(0.5, abs=1e-6)
    # normalised highs +-(.5,-.5,.5,-.5): psi diff = 2 ln 1.5 per entry
    assert out["high"].item() == pytest.approx((2 * math.log(1.5)) ** 2, abs=1e-6)


def test_losses_zero_when_student_equals_teacher():  # test 3
    f = torch.randn(6, 64)
    lm, hm = band_masks(64)
    out = fd_losses(f, f.clone(), lm, hm)
    assert out["low"].item() == 0.0 and out["high"].item() == 0.0


def test_psi_odd_monotone_zero():  # test 5
    x = torch.linspace(-5, 5, 101)
    y = signed_log1p(x)
    torch.testing.assert_close(signed_log1p(-x), -y)
    assert (y[1:] > y[:-1]).all() and signed_log1p(torch.zeros(1)).item() == 0.0


def test_half_precision_is_computed_in_float32():  # test 7
    f = torch.randn(4, 37).half()
    low, high = split_bands(f)
    assert low.dtype == torch.float16
    ref_low, _ = split_bands(f.float())
    torch.testing.assert_close(low.float(), ref_low, atol=2e-3, rtol=1e-2)
    out = fd_losses(torch.randn(4, 36).bfloat16(), torch.randn(4, 36).bfloat16(), *band_masks(36))
    assert torch.isfinite(out["low"]) and torch.isfinite(out["high"])


def _setup(cfg: FDCMKDConfig, d_s: int = 16, d_t: int = 16, c: int = 5):
    torch.manual_seed(0)
    student, teacher = nn.Linear(7, d_s), nn.Linear(9, d_t)
    s_head = nn.Linear(d_s, c)
    loss = FDCMKD(cfg, Dims(s_feat=d_s, t_feat=d_t), c, seed=0)
    xs, xt, y = torch.randn(8, 7), torch.randn(8, 9), torch.randint(0, c, (8,))
    fs, ft = student(xs), teacher(xt)  # teacher output NOT detached: the loss must detach it
    out = loss(KDInputs(s_head(fs), ft.detach() * 0 + ft, y, s_feat=fs, t_feat=ft))
    return student, teacher, loss, out


def test_gradients_reach_student_and_heads_never_teacher():  # test 4
    student, teacher, loss, out = _setup(FDCMKDConfig())
    sum(out.values()).backward()
    assert student.weight.grad is not None and student.weight.grad.abs().sum() > 0
    for head in (loss.phi_low, loss.phi_high, loss.psi_low, loss.psi_high):
        assert head[1].weight.grad is not None and head[1].weight.grad.abs().sum() > 0
    assert teacher.weight.grad is None
    assert set(out) == {"ce", "ce_aux_low", "ce_aux_high", "align_low", "align_high", "low", "high"}


def test_heads_only_and_permutation_settings():
    _, _, _, out = _setup(FDCMKDConfig(lambda_low=0.0, lambda_high=0.0))
    assert out["low"].item() == 0.0 and out["high"].item() == 0.0 and out["align_low"].item() > 0
    _, _, loss, out = _setup(FDCMKDConfig(channel_permutation_control=True))
    assert sorted(loss.perm.tolist()) == list(range(16)) and loss.perm.tolist() != list(range(16))
    # a permutation changes what "low" means: the band terms differ from the unpermuted run
    _, _, _, plain = _setup(FDCMKDConfig())
    assert out["low"].item() != pytest.approx(plain["low"].item(), rel=1e-3)


def test_projector_when_widths_differ():
    student, _, loss, out = _setup(FDCMKDConfig(), d_s=12, d_t=16)
    assert isinstance(loss.proj, nn.Linear)
    sum(out.values()).backward()
    assert loss.proj.weight.grad is not None


def test_learnable_split_soft_mask():
    d = 64
    cut = torch.tensor(float(cut_index(d, 0.5)))
    low, high = soft_band_masks(d, cut, temperature=1e-3)
    hard_low, hard_high = band_masks(d)
    torch.testing.assert_close(low, hard_low)
    torch.testing.assert_close(high, hard_high)
    _, _, loss, out = _setup(FDCMKDConfig(learnable_split=True))
    assert loss.cut().item() == pytest.approx(4.0, abs=1e-3)  # D = 16: K = 9, c = 4
    sum(out.values()).backward()
    assert loss.cut_logit.grad is not None and loss.cut_logit.grad.abs() > 0
