"""Cross-arch evaluation kwargs (``arch_kwargs``): they reach the evaluation net and are recorded when used."""

import pytest
from torch import nn

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
