"""Factorised storage (av-distillation.md §7.3, §7.8 item 2): decode(init(x)) returns the source pairs, aligned."""

import pytest
import torch

from av_fixtures import tiny_av
from mmdistill import factor as fac
from mmdistill.distill.init import init_synthetic
from mmdistill.errors import ConfigError
from mmdistill.synth import SyntheticSet


def _smooth_rows(n, shape, seed):
    g = torch.Generator().manual_seed(seed)
    # low-frequency content (survives bilinear down/up-sampling) + a per-row offset identifying the row
    base = torch.nn.functional.interpolate(torch.randn(n, shape[0], 4, 4, generator=g), size=shape[1:], mode="bilinear",
                                           align_corners=False)
    return base + torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1) * 10.0


def test_grid2d_block_order_is_tl_bl_tr_br():
    x = torch.zeros(1, 1, 4, 4)
    x[..., :2, :2], x[..., 2:, :2], x[..., :2, 2:], x[..., 2:, 2:] = 1, 2, 3, 4
    out = fac.decode(x, "grid2d", 2)
    assert out.shape == (4, 1, 4, 4)
    assert [float(o.mean()) for o in out] == [1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("layouts, m", [({"audio": "grid2d", "visual": "grid2d"}, 4),
                                        ({"audio": "time1d", "visual": "grid2d"}, 4),
                                        ({"audio": "time1d", "visual": "time1d"}, 2)])
def test_decode_encode_roundtrip_keeps_pairs_aligned(layouts, m):
    n = 3
    shapes = {"audio": (1, 16, 16), "visual": (3, 16, 16)}
    src = {k: _smooth_rows(m * n, s, i) for i, (k, s) in enumerate(shapes.items())}
    assert fac.multiplicity(layouts, 2) == m
    dec = {k: fac.decode(fac.encode(src[k], layouts[k], 2, m), layouts[k], 2, m) for k in shapes}
    for k in shapes:
        assert dec[k].shape == src[k].shape
        # row j of the decoded tensor is source row j (offsets 10·j dominate, error of resampling is small)
        err = (dec[k] - src[k]).abs().mean(dim=(1, 2, 3))
        assert float(err.max()) < 1.0
        ids = (dec[k].mean(dim=(1, 2, 3)) / 10.0).round().long()
        assert ids.tolist() == list(range(m * n))


def test_init_tiles_same_real_pair_into_both_modalities_and_decode_set():
    ds = tiny_av(per_class=24)
    # tag every pair by its row index in BOTH modalities so alignment is checkable after decode
    idx = torch.arange(len(ds), dtype=torch.float32).view(-1, 1, 1, 1) * 100.0
    ds.tensors = {"audio": torch.zeros_like(ds.tensors["audio"]) + idx, "visual": torch.zeros_like(ds.tensors["visual"]) + idx}
    layouts = {"audio": "grid2d", "visual": "grid2d"}
    per_mod, labels, info = init_synthetic(ds, 2, 2, layouts, "real", 0, gen=torch.Generator().manual_seed(0))
    syn = SyntheticSet(tensors={k: torch.cat(v) for k, v in per_mod.items()}, labels=labels,
                       meta={"layout": {"factor": 2, **layouts}})
    dec = fac.decode_set(syn)
    assert len(dec) == 4 * len(syn) and dec.labels.tolist() == labels.repeat(4).tolist()
    a_ids = (dec.tensors["audio"].mean(dim=(1, 2, 3)) / 100).round().long()
    v_ids = (dec.tensors["visual"].mean(dim=(1, 2, 3)) / 100).round().long()
    assert torch.equal(a_ids, v_ids)  # decoded pair j: audio and frame from one real pair
    assert torch.equal(ds.labels[a_ids], dec.labels)  # and of the right class
    assert len(set(a_ids.tolist())) == len(a_ids)  # 4·IPC distinct real pairs per class
    src = sorted(i for s in info["source_indices"] for i in s)
    assert sorted(a_ids.tolist()) == src
    assert fac.decode_set(dec) is dec  # decoding twice is a no-op


def test_bad_layout_and_split():
    with pytest.raises(ConfigError, match="layout must be one of"):
        fac.multiplicity({"audio": "spiral"}, 2)
    with pytest.raises(ConfigError, match="cannot split"):
        fac.decode(torch.zeros(1, 1, 1, 8), "grid2d", 2)
