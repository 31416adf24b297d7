"""Nets: the registry contract on every input shape, calibrated sizes, taps and the functional path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmdistill.errors import ConfigError
from mmdistill.nets import count_params, create_net, net_names
from mmdistill.nets.functional import flat_params, functional_forward, unflatten
from mmdistill.nets.heads import EnsembleHead, ProjectionHead, fuse
from mmdistill.nets.hooks import FeatureTap

# Small widths keep the grid fast; sizes at paper widths are checked by counting parameters.
IMAGE_NETS = {
    "convnet": {"width": 8},
    "lenet": {},
    "alexnet": {"width": 8},
    "vgg11": {"width": 8},
    "resnet18": {"width": 4},
}
HEADS = {"linear": {}, "mlp": {"hidden": 16}, "projection": {"out_dim": 12}}
SMALL_SHAPES = [(1, 28, 28), (1, 32, 32), (3, 32, 32), (1, 64, 64), (3, 64, 64)]
PAPER_SHAPES = [(1, 128, 56), (3, 224, 224)]




def test_registry_lists_every_arch() -> None:
    assert set(IMAGE_NETS) | set(HEADS) <= set(net_names())


@pytest.mark.parametrize("name", list(IMAGE_NETS))
@pytest.mark.parametrize("shape", SMALL_SHAPES + PAPER_SHAPES)
def test_image_nets_shapes(name: str, shape: tuple[int, int, int]) -> None:
    torch.manual_seed(0)
    net = create_net(name, shape, num_classes=7, **IMAGE_NETS[name])
    batches = (1,) if shape in PAPER_SHAPES else (1, 3)
    for train in (True, False):
        net.train(train)
        for b in batches:
            x = torch.randn(b, *shape)
            assert net(x).shape == (b, 7)
            assert net.embed(x).shape == (b, net.feat_dim)
    bare = create_net(name, shape, **IMAGE_NETS[name])
    x = torch.randn(1, *shape)
    assert bare(x).shape == (1, bare.feat_dim) == (1, net.feat_dim)
    torch.testing.assert_close(bare(x), bare.embed(x))


@pytest.mark.parametrize("name", ["convnet", "vgg11", "resnet18"])
@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_norm_options(name: str, norm: str) -> None:
    if name == "resnet18" and norm == "none":
        with pytest.raises(ConfigError, match="norm"):
            create_net(name, (3, 32, 32), norm=norm)
        return
    net = create_net(name, (3, 32, 32), num_classes=4, norm=norm, **IMAGE_NETS[name])
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 4)
    norms = {type(m).__name__ for m in net.modules()} & {"GroupNorm", "BatchNorm2d"}
    assert norms == {"instance": {"GroupNorm"}, "batch": {"BatchNorm2d"}, "none": set()}[norm]


@pytest.mark.parametrize("name", list(HEADS))
@pytest.mark.parametrize("d", [1, 384])
def test_heads_shapes(name: str, d: int) -> None:
    net = create_net(name, (d,), num_classes=5, **HEADS[name])
    for b in (1, 4):
        x = torch.randn(b, d)
        assert net(x).shape == (b, 5)
        assert net.embed(x).shape == (b, net.feat_dim)


def test_head_dims() -> None:
    assert create_net("linear", (384,)).feat_dim == 384
    assert create_net("linear", (384,), out_dim=64).feat_dim == 64
    text_head = create_net("mlp", (384,), hidden=512, out_dim=256)  # cpu-calibration.md §3 (c)
    assert text_head.feat_dim == 256 and count_params(text_head) == 384 * 512 + 512 + 512 * 256 + 256
    assert create_net("mlp", (384,), hidden=32).feat_dim == 32
    assert create_net("projection", (384,), out_dim=64).feat_dim == 64


@pytest.mark.parametrize("name", list(IMAGE_NETS) + list(HEADS))
def test_unknown_kwarg_is_config_error(name: str) -> None:
    shape = (16,) if name in HEADS else (3, 32, 32)
    with pytest.raises(ConfigError, match="bogus_option"):
        create_net(name, shape, bogus_option=1)


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="'width'"):
        create_net("convnet", (3, 32, 32), widht=8)  # did-you-mean hint
    with pytest.raises(ConfigError, match="in_shape"):
        create_net("convnet", (32, 32))
    with pytest.raises(ConfigError, match="norm"):
        create_net("convnet", (3, 32, 32), norm="layer")
    with pytest.raises(ConfigError, match="num_classes"):
        create_net("lenet", (3, 32, 32), num_classes=-1)
    with pytest.raises(ConfigError, match="final_pool"):
        create_net("convnet", (3, 32, 32), final_pool=7)
    with pytest.raises(ConfigError, match="too small"):
        create_net("lenet", (1, 8, 8))


def test_calibrated_param_counts() -> None:
    """cpu-calibration.md §2, with a 10-class linear classifier."""

    def n(name: str, shape: tuple[int, ...], **kw: object) -> int:
        return count_params(create_net(name, shape, num_classes=10, **kw))

    assert n("convnet", (1, 28, 28), width=128) == 317_706  # "318k" (first conv pad 3 → 32×32)
    assert n("convnet", (3, 32, 32), width=128) == 320_010  # "320k"
    assert n("convnet", (3, 32, 32), width=128, norm="batch") == 320_010
    assert n("convnet", (3, 32, 32), width=64) == 86_282  # "86k"
    assert n("convnet", (1, 64, 64), width=128) == 379_146  # "379k"
    assert n("convnet", (3, 64, 64), width=128) == 381_450  # "381k"
    assert n("convnet", (3, 64, 64), width=128, depth=4) == 467_850  # "468k"
    assert n("lenet", (1, 28, 28)) == 61_706 and n("lenet", (3, 32, 32)) == 62_006  # "62k"
    assert n("resnet18", (1, 28, 28)) == 701_178 and n("resnet18", (3, 32, 32)) == 701_466  # "701k"
    assert n("resnet18", (3, 32, 32), norm="instance") == 701_466
    assert n("resnet18", (3, 32, 32), width=64) == 11_173_962  # "11.2M"


def test_dc_paper_widths() -> None:
    """DC's VGG11 (width 64) and AlexNet (width 128) sizes on 3×32×32."""
    assert count_params(create_net("vgg11", (3, 32, 32), 10, width=64)) == 9_231_114
    alex = create_net("alexnet", (3, 32, 32), 10, width=128)
    assert alex.feat_dim == 192 * 4 * 4 and count_params(alex) == 1_872_202


def test_convnet_first_pad() -> None:
    conv = lambda net: net.features[0].conv  # noqa: E731
    assert conv(create_net("convnet", (1, 28, 28))).padding == (3, 3)
    assert conv(create_net("convnet", (3, 28, 28))).padding == (3, 3)
    assert conv(create_net("convnet", (1, 32, 32))).padding == (1, 1)
    assert conv(create_net("convnet", (1, 32, 32), first_pad="dc")).padding == (3, 3)
    assert conv(create_net("convnet", (3, 32, 32), first_pad="dc")).padding == (1, 1)
    assert conv(create_net("convnet", (3, 32, 32), first_pad=0)).padding == (0, 0)
    assert create_net("convnet", (1, 28, 28), width=4).feat_dim == create_net("convnet", (1, 32, 32), width=4).feat_dim
    with pytest.raises(ConfigError, match="first_pad"):
        create_net("convnet", (3, 32, 32), first_pad="same")


def test_convnet_pooling_stops_at_one_pixel() -> None:
    for norm in ("none", "batch"):  # 32→16→8→4→2→1, then no pool
        net = create_net("convnet", (1, 28, 28), num_classes=3, width=4, depth=7, norm=norm)
        assert net.feat_dim == 4 and net(torch.randn(2, 1, 28, 28)).shape == (2, 3)
    with pytest.raises(ConfigError, match="1×1"):  # instance norm over one pixel is undefined
        create_net("convnet", (1, 28, 28), width=4, depth=7)
    assert create_net("convnet", (3, 32, 32), width=4, pooling="none", depth=2).feat_dim == 4 * 32 * 32
    assert create_net("convnet", (3, 32, 32), width=4, pooling="max").feat_dim == 4 * 4 * 4


def test_avdd_encoders_are_6272_dim() -> None:
    """av-distillation.md §3.3/§7.2: audio depth 3 + adaptive 7×7 and visual depth 5 both give 128·7·7."""
    torch.manual_seed(0)
    audio = create_net("convnet", (1, 128, 56), width=128, depth=3, final_pool=(7, 7), first_pad="dc")
    assert audio.features[0].conv.padding == (3, 3)  # AVDD's quirk: 132×60 → 66×30 → 33×15 → 7×7
    assert isinstance(audio.features[-1].pool, torch.nn.AdaptiveAvgPool2d)
    assert audio.feat_dim == 6272 and audio.embed(torch.randn(1, 1, 128, 56)).shape == (1, 6272)
    assert create_net("convnet", (1, 128, 56), width=128, final_pool=[7, 7]).feat_dim == 6272
    visual = create_net("convnet", (3, 224, 224), width=128, depth=5, final_pool=(7, 7))
    assert visual.feat_dim == 6272
    with torch.no_grad():
        assert visual.embed(torch.randn(1, 3, 224, 224)).shape == (1, 6272)
    assert create_net("convnet", (3, 224, 224), width=128, depth=5).feat_dim == 6272
    toy = [create_net("convnet", s, width=128, depth=2, final_pool=(7, 7)).feat_dim for s in [(1, 32, 32), (3, 32, 32)]]
    assert toy == [6272, 6272]  # §7.2 toy setting


@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_resnet_pre_relu_tap(norm: str) -> None:
    torch.manual_seed(0)
    width = 4
    net = create_net("resnet18", (3, 32, 32), num_classes=5, width=width, norm=norm)
    x = torch.randn(3, 3, 32, 32)
    post, pre = net.embed_with_pre_relu(x)
    assert pre.shape == post.shape == (3, 8 * width)
    torch.testing.assert_close(pre, net.embed_pre_relu(x))
    torch.testing.assert_close(post, net.embed(x))
    torch.testing.assert_close(net.classifier(post), net(x))
    with FeatureTap(net, ["layer4", "relu4"]) as tap:
        net(x)
    assert (tap.features["layer4"] < 0).any()
    assert (post >= pre).all() and (post > pre + 1e-3).any()
    torch.testing.assert_close(tap.features["layer4"].mean((2, 3)), pre)
    torch.testing.assert_close(F.relu(tap.features["layer4"]), tap.features["relu4"])


def test_resnet_stem() -> None:
    stem = lambda shape, **kw: type(create_net("resnet18", shape, width=4, **kw).stem[-1]).__name__  # noqa: E731
    assert stem((3, 32, 32)) == "ReLU"  # CIFAR stem, no max-pool
    assert stem((1, 128, 56)) == "ReLU"
    assert stem((3, 224, 224)) == "MaxPool2d"
    assert stem((3, 64, 64), stem="imagenet") == "MaxPool2d"


def test_construction_is_seeded() -> None:
    def params(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return flat_params(create_net("convnet", (3, 32, 32), 10, width=8))[0]

    torch.testing.assert_close(params(3), params(3))
    assert not torch.equal(params(3), params(4))


@pytest.mark.parametrize(
    ("name", "kw"),
    [("convnet", {"width": 8, "norm": "batch"}), ("convnet", {"width": 8}), ("resnet18", {"width": 4}), ("lenet", {})],
)
@pytest.mark.parametrize("train", [True, False])
def test_functional_forward_matches_module(name: str, kw: dict, train: bool) -> None:
    torch.manual_seed(0)
    net = create_net(name, (3, 32, 32), num_classes=10, **kw).train(train)
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, 10, (6,))
    flat, spec = flat_params(net)
    assert flat.shape == (count_params(net),) and not flat.requires_grad
    flat.requires_grad_(True)
    out = functional_forward(net, flat, spec, x)
    ref = net(x)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(functional_forward(net, flat, spec, x, method="embed"), net.embed(x))
    F.cross_entropy(out, y).backward()
    net.zero_grad()
    F.cross_entropy(ref, y).backward()
    torch.testing.assert_close(flat.grad, torch.cat([p.grad.reshape(-1) for p in net.parameters()]))


def test_functional_forward_uses_given_params() -> None:
    torch.manual_seed(0)
    net = create_net("mlp", (8,), num_classes=3, hidden=16)
    flat, spec = flat_params(net)
    params = unflatten(flat, spec)
    assert list(params) == [n for n, _ in net.named_parameters()]
    x = torch.randn(2, 8)
    zero = functional_forward(net, torch.zeros_like(flat), spec, x)
    torch.testing.assert_close(zero, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="elements"):
        unflatten(flat[:-1], spec)


def test_feature_tap() -> None:
    torch.manual_seed(0)
    net = create_net("convnet", (3, 32, 32), num_classes=4, width=8)
    x = torch.randn(2, 3, 32, 32)
    with FeatureTap(net, ["features.2.act", "classifier"], io="input") as tap:
        logits = net(x)
    torch.testing.assert_close(tap.features["classifier"], net.embed(x))
    assert tap.features["features.2.act"].shape == (2, 8, 8, 8)
    with FeatureTap(net, ["classifier", ""]) as out_tap:
        net(x)
    torch.testing.assert_close(out_tap.features["classifier"], logits)
    torch.testing.assert_close(out_tap.features[""], logits)
    assert all(not m._forward_hooks for m in net.modules())  # hooks removed on exit


def test_feature_tap_bad_path_lists_close_names() -> None:
    net = create_net("resnet18", (3, 32, 32), width=4)
    with pytest.raises(ConfigError, match=r"no submodule 'layer4\.1\.relu'.*layer4\.1\.act"):
        FeatureTap(net, ["layer4.1.relu"])
    with pytest.raises(ConfigError, match="io"):
        FeatureTap(net, ["layer4"], io="both")


def test_projection_head() -> None:
    torch.manual_seed(0)
    head = ProjectionHead(384, 64, dropout=0.1).eval()
    x = torch.randn(5, 384)
    p = head.projection(x)
    expected = F.layer_norm(head.fc(F.gelu(p)) + p, (64,), head.layer_norm.weight, head.layer_norm.bias)
    torch.testing.assert_close(head(x), expected)
    net = create_net("projection", (384,), out_dim=64, dropout=0.0)
    assert isinstance(net.features[1], ProjectionHead) and net.feat_dim == 64


def test_ensemble_head_and_fusion() -> None:
    torch.manual_seed(0)
    head = EnsembleHead(6272, 6272, 10)
    for fc in (head.fc_a, head.fc_v):
        assert abs(fc.weight.std().item() - 1e-4) < 1e-5 and abs(fc.weight.mean().item()) < 1e-5
    fa, fv = torch.randn(4, 6272), torch.randn(4, 6272)
    la, lv = head(fa, fv)
    assert la.shape == lv.shape == (4, 10)
    torch.testing.assert_close(fuse(la, lv), (la.softmax(1) + lv.softmax(1)) / 2)
    torch.testing.assert_close(fuse(la, lv, mode="sum_logits"), la + lv)
    only_a, none_v = head(fa, None)
    assert none_v is None
    torch.testing.assert_close(fuse(only_a, None), la.softmax(1))
    with pytest.raises(ConfigError, match="concat"):
        fuse(la, lv, mode="concat")
