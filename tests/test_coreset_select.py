import torch

from mmdistill.coreset import select
from mmdistill.seed import generator


def test_herding_first_pick_is_nearest_mean_and_mean_matches_better_than_random():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    idx = select.herding_select(x, 10)
    assert idx.unique().numel() == 10
    assert int(idx[0]) == int((x - x.mean(0)).norm(dim=1).argmin())
    err_h = (x[idx].mean(0) - x.mean(0)).norm()
    errs = [(x[select.random_select(200, 10, generator(s))].mean(0) - x.mean(0)).norm() for s in range(20)]
    assert err_h < torch.stack(errs).median()


def test_kcenter_covers_far_points():
    x = torch.cat([torch.zeros(50, 2), torch.tensor([[100.0, 0.0], [0.0, 100.0]])])
    idx = select.kcenter_select(x, 3, generator(0)).tolist()
    assert 50 in idx and 51 in idx


def test_forgetting_picks_most_forgotten_with_seeded_ties():
    counts = torch.tensor([0, 5, 1, 5, 2])
    a = select.forgetting_select(counts, 3, generator(0)).tolist()
    assert set(a[:2]) == {1, 3} and a[2] == 4
    assert a == select.forgetting_select(counts, 3, generator(0)).tolist()
