"""Cross-arch evaluation kwargs (``arch_kwargs``) and the ResNet-18 BatchNorm probe (issue 4)."""

import pytest
import torch
from torch import nn

from mmdistill.bench.av_bn_probe import VARIANTS, probe_lines, standardise
from mmdistill.errors import ConfigError
from mmdistill.evaluate.classification import AVClassifier
from mmdistill.evaluate.protocol import default_protocol

SHAPES = {"audio": (1, 32, 32), "visual": (1, 28, 28)}


def _has(model: nn.Module, kind: type) -> bool:
    return any(isinstance(m, kind) for m in model.modules())


def test_arch_kwargs_reach_the_evaluation_net():
    bn = AVClassifier(default_protocol("classification", arch="resnet18"), SHAPES, 10)
    inst = AVClassifier(default_protocol("classification", arch="resnet18",
                                         arch_kwargs={"resnet18": {"norm": "instance"}}), SHAPES, 10)
    assert _has(bn, nn.BatchNorm2d)
    assert not _has(inst, nn.BatchNorm2d)


def test_arch_kwargs_are_recorded_only_when_used():
    plain = default_protocol("classification", arch="resnet18").describe(10)
    used = default_protocol("classification", arch="resnet18", arch_kwargs={"resnet18": {"norm": "instance"}}).describe(10)
    assert "arch_kwargs" not in plain and plain["nets"]["audio"] == {"arch": "resnet18"}
    assert used["nets"]["visual"] == {"arch": "resnet18", "norm": "instance"}


def test_unknown_arch_kwarg_is_a_clear_error():
    proto = default_protocol("classification", arch="resnet18", arch_kwargs={"resnet18": {"nrom": "instance"}})
    with pytest.raises(ConfigError, match="did you mean 'norm'"):
        AVClassifier(proto, SHAPES, 10)


def test_standardise_matches_the_real_moments_and_keeps_the_order():
    g = torch.Generator().manual_seed(0)
    syn = {"audio": 5 + 3 * torch.randn(10, 1, 8, 8, generator=g), "visual": torch.rand(10, 1, 8, 8, generator=g)}
    real = {"audio": torch.randn(50, 1, 8, 8, generator=g), "visual": 0.5 + 0.2 * torch.randn(50, 1, 8, 8, generator=g)}
    out = standardise(syn, real)
    for m in syn:
        assert torch.allclose(out[m].mean(), real[m].mean(), atol=1e-5)
        assert torch.allclose(out[m].std(), real[m].std(), atol=1e-5)
        assert torch.equal(out[m].flatten().argsort(), syn[m].flatten().argsort())  # affine, increasing


def test_probe_lines_render_every_variant():
    res = {"dataset": "av-digits", "ipc": 1, "syn_seed": 0, "eval_seeds": [0, 1, 2],
           "real_moments": {"audio": [0.1, 1.0], "visual": [0.2, 0.3]},
           "sets": {"avdd": {"moments": {"audio": [0.5, 4.0], "visual": [0.1, 2.0]},
                             "fused_acc": {v: {"mean": 10.0 + i, "std": 0.5} for i, v in enumerate(VARIANTS)}}}}
    lines = probe_lines(res)
    assert any(l.startswith("| avdd | 0.50 / 4.00 | 0.10 / 2.00 | 10.0 ± 0.5 | 11.0 ± 0.5 | 12.0 ± 0.5 |") for l in lines)
    assert probe_lines({}) == []
