"""LoRS similarity indexing, the soft losses (WBCE golden value) and the temperature convention."""

import math

import pytest
import torch

from mmdistill.losses import contrastive as losses
from mmdistill.losses.learned_similarity import Similarity, loss_and_target_from_set, similarity_floats
from mmdistill.synth import SyntheticSet


def _lowrank(n=12, r=3, alpha=2.0):
    s = Similarity.init(n, "lowrank", rank=r, alpha=alpha, gen=torch.Generator().manual_seed(0))
    s.tensors["a"] = torch.rand(n) + 0.5
    s.tensors["R"] = torch.randn(n, r)
    return s


def test_minibatch_block_equals_materialised_submatrix():
    s = _lowrank()
    full = s.matrix()
    for idx in (torch.tensor([3, 0, 7, 11, 5]), torch.randperm(12)[:6], torch.tensor([2, 2, 4])):  # repeats too
        torch.testing.assert_close(s.block(idx), full[idx][:, idx])
    f = Similarity.init(6, "full")
    f.tensors["full"] = torch.randn(6, 6)
    idx = torch.tensor([5, 1, 3])
    torch.testing.assert_close(f.block(idx), f.tensors["full"][idx][:, idx])


def test_init_is_identity_and_float_count():
    s = Similarity.init(7, "lowrank", rank=2, alpha=3.0)
    torch.testing.assert_close(s.matrix(), torch.eye(7))
    assert similarity_floats(99, "lowrank", 10) == 99 + 2 * 99 * 10
    assert similarity_floats(5, "full", 0) == 25


def test_loss_and_target_from_saved_set(tmp_path):
    s = _lowrank(n=5, r=2, alpha=1.5)
    syn = SyntheticSet(tensors={"image": torch.randn(5, 3, 4, 4), "text": torch.randn(5, 6)}, extras=s.extras(),
                       meta={"similarity": s.meta("bce")})
    syn.save(tmp_path)
    target_fn, loss_fn = loss_and_target_from_set(SyntheticSet.load(tmp_path))
    idx = torch.tensor([4, 1, 2])
    torch.testing.assert_close(target_fn(idx), s.matrix()[idx][:, idx])
    assert loss_fn is losses.bce


def test_wbce_golden_value():
    z = torch.tensor([[2.0, -1.0], [0.5, 1.0]])
    s = torch.tensor([[1.0, 0.2], [0.7, 0.9]])
    # positives (S > 0.5): (0,0), (1,0), (1,1); negative: (0,1); l = softplus(z) - S z, computed by hand
    assert float(losses.wbce(z, s)) == pytest.approx(0.4506752908826618, rel=1e-6)
    sp = lambda v: math.log1p(math.exp(v))
    want_bce = (sp(2) - 2 + sp(-1) + 0.2 + sp(0.5) - 0.35 + sp(1) - 0.9) / 4
    assert float(losses.bce(z, s)) == pytest.approx(want_bce, rel=1e-6)


def test_soft_losses_reduce_to_infonce_on_identity():
    torch.manual_seed(0)
    z = torch.randn(5, 5)
    eye = torch.eye(5)
    assert float(losses.soft_infonce(z, eye)) == pytest.approx(float(losses.info_nce(z)), rel=1e-6)
    assert float(losses.cwcl(z, eye)) == pytest.approx(float(losses.info_nce(z)), rel=1e-5)
    for name, fn in losses.SOFT_LOSSES.items():
        v = fn(z, eye)
        assert torch.isfinite(v) and v >= 0, name
    with pytest.raises(Exception, match="unknown soft contrastive loss"):
        losses.soft_loss("nope")


def test_scale_bug_flag_changes_logits_as_specified():
    torch.manual_seed(0)
    zi, zt = torch.randn(4, 8), torch.randn(4, 8)
    ls = losses.log_scale_of(0.07)
    cos = torch.nn.functional.normalize(zi, dim=1) @ torch.nn.functional.normalize(zt, dim=1).T
    good = losses.contrastive_logits(zi, zt, ls)
    bug = losses.contrastive_logits(zi, zt, ls, scale_bug=True)
    torch.testing.assert_close(good, cos * (1 / 0.07))
    torch.testing.assert_close(bug, cos * math.log(1 / 0.07))
    assert float(good.abs().max() / bug.abs().max()) == pytest.approx(14.2857 / 2.6593, rel=1e-3)


def test_protocol_similarity_field_selects_soft_targets_or_infonce(monkeypatch):
    """``similarity: set`` trains against the set's S; ``ignore`` trains with plain InfoNCE (no target)."""
    from mmdistill.evaluate import protocol as P
    from mmdistill.evaluate.retrieval import RetrievalProtocol
    from vl_fixtures import tiny_retrieval

    ds = tiny_retrieval(n_img=6, caps=1)
    s = _lowrank(n=6, r=2, alpha=1.5)
    syn = SyntheticSet(tensors={"image": ds.tensors["image"].clone(), "text": ds.tensors["text"].clone()},
                       extras=s.extras(), meta={"similarity": s.meta("wbce")})
    seen = []
    monkeypatch.setattr(P, "evaluate_tensors", lambda proto, train, labels, test, target=None, **kw: (seen.append(target), ({}, 0.0))[1])
    monkeypatch.setattr(syn, "check_compatible", lambda *a, **k: None)
    for mode in ("set", "ignore"):
        try:
            P.evaluate_set(syn, ds, ds, RetrievalProtocol(similarity=mode, seeds=[0]))
        except Exception:  # the stubbed evaluation returns no metrics; only the target passed matters here
            pass
    assert seen[0] is not None and seen[0][1] is losses.wbce
    assert seen[1] is None
