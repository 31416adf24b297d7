"""AVDD's ICM/CGM identity (av-distillation.md §3.5, §7.8 item 1) and its consequence for the SGD trajectory."""

import pytest
import torch

from av_fixtures import NET, tiny_av
from mmdistill.config import from_dict
from mmdistill.distill import get_method
from mmdistill.distill.avdd import avdd_closed_form, avdd_loss, dm_equivalent_lr
from mmdistill.distill.base import Budget, run


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _means(d=6272, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(d, generator=g, dtype=torch.float64) for _ in range(4)]


@pytest.mark.parametrize("li, lc", [(10.0, 10.0), (1.0, 1.0), (0.0, 0.0), (10.0, 0.0), (0.0, 10.0), (5.0, 10.0)])
def test_identity_closed_form(li, lc):
    ar, vr, as_, vs = _means(seed=int(li * 7 + lc))
    loss, parts = avdd_loss(ar, vr, as_, vs, li, lc)
    dm = ((ar - as_) ** 2).sum() + ((vr - vs) ** 2).sum()
    assert torch.allclose(loss, avdd_closed_form(ar - as_, vr - vs, li, lc), rtol=1e-10)
    if li == lc:
        assert torch.allclose(loss, (1 + li + lc) * dm, rtol=1e-10)
    else:  # a real coupling term remains: the loss is NOT a multiple of DM
        assert not torch.allclose(loss, (1 + li + lc) * dm, rtol=1e-6)
    assert torch.allclose(parts["da2"] + parts["dv2"], dm)


def test_equal_weights_give_21x_dm_and_equivalent_lr():
    ar, vr, as_, vs = _means(d=64, seed=3)
    loss, _ = avdd_loss(ar, vr, as_, vs, 10.0, 10.0)
    dm = ((ar - as_) ** 2).sum() + ((vr - vs) ** 2).sum()
    assert torch.allclose(loss / dm, torch.tensor(21.0, dtype=torch.float64))
    assert dm_equivalent_lr(0.2, 10, 10) == pytest.approx(4.2)


def test_avdd_equals_dm_at_equivalent_lr_through_the_run_loop(tmp_path):
    """Same seeds, λ_icm = λ_cgm: AVDD at lr equals DM at lr·(1+2λ) (momentum SGD is linear in the gradient)."""
    ds = tiny_av()
    common = {"iterations": 3, "batch_real": 8, "init": "real", "net": NET}
    avdd_cls, dm_cls = get_method("avdd"), get_method("dm")
    a = run(avdd_cls(from_dict(avdd_cls.Config, {**common, "lr_audio": 0.01, "lr_visual": 0.01, "lambda_icm": 2.0,
                                                 "lambda_cgm": 2.0}), ds, Budget(1, "ipc"), 5), tmp_path / "a", progress=False)
    lr = dm_equivalent_lr(0.01, 2.0, 2.0)
    d = run(dm_cls(from_dict(dm_cls.Config, {**common, "lr_audio": lr, "lr_visual": lr}), ds, Budget(1, "ipc"), 5),
            tmp_path / "d", progress=False)
    for m in ("audio", "visual"):
        assert torch.allclose(a.tensors[m], d.tensors[m], atol=1e-4, rtol=1e-4)
    init = run(dm_cls(from_dict(dm_cls.Config, {**common, "iterations": 0}), ds, Budget(1, "ipc"), 5), tmp_path / "i",
               progress=False)
    assert not torch.allclose(init.tensors["audio"], d.tensors["audio"], atol=1e-3)  # it did move


def test_avdd_needs_equal_embedding_dims(tmp_path):
    from mmdistill.errors import ConfigError

    cls = get_method("avdd")
    cfg = from_dict(cls.Config, {"iterations": 1, "init": "real", "net": {**NET, "audio_final_pool": [3, 3]}})
    with pytest.raises(ConfigError, match="audio embedding is 72-d but visual is 32-d"):
        run(cls(cfg, tiny_av(), Budget(1, "ipc"), 0), tmp_path, progress=False)
