"""Siamese DSA (av-distillation.md §2.2/§2.3, §7.8 item 3)."""

import pytest
import torch

from mmdistill.dsa import SPEC_AUDIO_OPS, VISUAL_OPS, DSAConfig, SiameseDSA, apply, draw


@pytest.mark.parametrize("seed", range(12))
def test_real_and_synthetic_get_identical_transform(seed):
    dsa = SiameseDSA(DSAConfig(audio_ops="avdd"))
    real, syn = torch.randn(6, 3, 16, 16), torch.randn(2, 3, 16, 16)
    p1, p2 = dsa.draw(seed), dsa.draw(seed)
    assert p1 == p2
    # applying to real and synthetic separately == applying once to the stacked batch (one shared transform)
    both = dsa(torch.cat([real, syn]), "visual", p1)
    assert torch.allclose(torch.cat([dsa(real, "visual", p1), dsa(syn, "visual", p2)]), both, atol=1e-6)


def test_faithful_mode_shares_op_and_params_across_modalities():
    dsa = SiameseDSA(DSAConfig(audio_ops="avdd", share_across_modalities=True))
    for s in range(20):
        p = dsa.draw(s)
        assert p["audio"] == p["visual"]
    ind = SiameseDSA(DSAConfig(audio_ops="avdd", share_across_modalities=False))
    assert any(ind.draw(s)["audio"] != ind.draw(s)["visual"] for s in range(20))


def test_spectrogram_default_never_touches_frequency():
    cfg = DSAConfig()
    dsa = SiameseDSA(cfg)
    assert dsa.ops["audio"] == SPEC_AUDIO_OPS and set(dsa.ops["visual"]) == set(VISUAL_OPS)
    x = torch.randn(2, 1, 8, 12)
    for s in range(40):
        p = dsa.draw(s)
        assert p["audio"].op in SPEC_AUDIO_OPS
        y = dsa(x, "audio", p)
        # every output time column is either an input column (shifted) or the fill value: frequency order kept
        for t in range(12):
            col = y[..., t]
            assert torch.all(col == cfg.mask_value) or any(torch.equal(col, x[..., u]) for u in range(12))


def test_ops_are_differentiable_and_change_input():
    cfg = DSAConfig()
    g = torch.Generator().manual_seed(0)
    seen = set()
    for s in range(200):
        g.manual_seed(s)
        p = draw(VISUAL_OPS, g, cfg)
        if p.op in seen:
            continue
        seen.add(p.op)
        x = torch.randn(2, 3, 16, 16, requires_grad=True)
        y = apply(x, p, cfg)
        y.sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all()
    assert seen == set(VISUAL_OPS)


def test_disabled_is_identity():
    dsa = SiameseDSA(DSAConfig(enabled=False))
    x = torch.randn(2, 1, 8, 8)
    p = dsa.draw(3)
    assert torch.equal(dsa(x, "visual", p), x) and torch.equal(dsa(x, "audio", p), x)
