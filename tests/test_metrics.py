import torch

from mmdistill.evaluate.metrics import retrieval_recalls
from mmdistill.evaluate.results import aggregate


def test_perfect_and_reversed_retrieval():
    # 3 images, 2 captions each; captions of image i are rows 2i, 2i+1
    t2i = torch.tensor([0, 0, 1, 1, 2, 2])
    sim = torch.full((3, 6), -1.0)
    sim[t2i, torch.arange(6)] = 1.0
    r = retrieval_recalls(sim, t2i)
    assert r["ir@1"] == 100.0 and r["tr@1"] == 100.0 and r["r_mean"] == 100.0
    r2 = retrieval_recalls(-sim, t2i)
    assert r2["ir@1"] == 0.0 and r2["tr@1"] == 0.0
    assert r2["ir@5"] == 100.0  # only 3 images: every caption's image is within top 5


def test_tr_counts_any_caption():
    t2i = torch.tensor([0, 0, 1])
    sim = torch.tensor([[0.1, 0.9, 0.5], [0.2, 0.0, 0.3]])
    r = retrieval_recalls(sim, t2i)
    # image 0: its caption 1 is top -> hit; image 1: caption 2 (0.3) is top in its row -> hit
    assert r["tr@1"] == 100.0
    # captions: c0 -> image1 scores 0.2 > 0.1 (miss); c1 hit; c2 -> image0 0.5 > 0.3 (miss)
    assert abs(r["ir@1"] - 100 / 3) < 1e-4


def test_aggregate_mean_std():
    a = aggregate([{"acc": 1.0}, {"acc": 3.0}])
    assert a["acc"]["mean"] == 2.0 and abs(a["acc"]["std"] - 2 ** 0.5) < 1e-9 and a["acc"]["per_seed"] == [1.0, 3.0]
    assert aggregate([{"acc": 5.0}])["acc"]["std"] == 0.0


def test_evaluation_is_deterministic_per_seed():
    from mmdistill.evaluate import classification as C

    g = torch.Generator().manual_seed(0)
    tr = {"audio": torch.randn(40, 1, 16, 16, generator=g), "visual": torch.randn(40, 1, 16, 16, generator=g)}
    y = torch.randint(0, 3, (40,), generator=g)
    p = C.ClassificationProtocol(width=8, min_steps=15, batch_size=16)
    a = C.train_and_test(p, tr, y, tr, y, 3, seed=1)
    assert a == C.train_and_test(p, tr, y, tr, y, 3, seed=1)


def test_minibatches_full_batches_and_epochs():
    from mmdistill.evaluate.batches import minibatches
    from mmdistill.seed import generator

    bs = list(minibatches(10, 4, 5, generator(0)))
    assert all(b.numel() == 4 for b in bs)
    assert len(set(torch.cat(bs[:2]).tolist())) == 8  # no repeats within an epoch
