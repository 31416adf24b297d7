"""CPU vs `device` parity: every family computed on the CPU and on the test's device must agree.

On a CPU-only machine `device` is "cpu" and each test compares two CPU runs (it then checks that the code path
is deterministic and device-clean: nothing breaks when tensors live on `device`). Where CUDA is available the
same tests also run with device "cuda" (marked `cuda`: ``pytest -m cuda``) and compare CUDA with the CPU.

Tolerances (relative error ``‖a − b‖ / ‖b‖`` of float32 results; TF32 is switched off for the CUDA side, so
both sides compute in IEEE float32 and differ only by summation order):

* one loss / gradient evaluation (KD losses, trajectory gradients, MDM step): 1e-4;
* updates after one or two outer iterations of a distiller (synthetic tensors minus their initial values):
  2e-3 (an update goes through a random network, augmentation and momentum SGD);
* evaluation (train fresh models for a few hundred steps, then test): metrics within 2 test samples' worth
  (a float-level difference can flip the rank of a borderline test sample).
"""

from __future__ import annotations

import copy

import pytest
import torch

from av_fixtures import NET as AV_NET, tiny_av
from mmdistill.config import from_dict
from mmdistill.distill import Budget, get_method, run
from mmdistill.distill.trajectory import trajectory_match
from mmdistill.experts.buffers import ExpertConfig, train_experts
from mmdistill.seed import derive_seed, seed_everything
from vl_fixtures import NET as VL_NET, experts_cfg, tiny_retrieval

ONE_EVAL = 1e-4
UPDATE = 2e-3


@pytest.fixture(autouse=True)
def _strict_fp32(tmp_path_factory, monkeypatch):
    """IEEE float32 on CUDA too (no TF32), and a private cache (expert buffers, banks)."""
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    if not torch.cuda.is_available():
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def assert_close(a: torch.Tensor, b: torch.Tensor, tol: float, what: str) -> None:
    assert a.shape == b.shape, f"{what}: shape {tuple(a.shape)} vs {tuple(b.shape)}"
    assert torch.isfinite(a).all(), f"{what}: non-finite values on the device"
    e = rel_err(a, b)
    assert e <= tol, f"{what}: relative error {e:.3g} > {tol:g}"


# ------------------------------------------------------------------------------------------ audio-visual
def _av(method: str, device: str, iterations: int = 2, **kw):
    cls = get_method(method)
    params = {"iterations": iterations, "batch_real": 8, "init": "real", "net": AV_NET, **kw}
    return cls(from_dict(cls.Config, params, where="test"), tiny_av(), Budget(1, "ipc"), 0, device=device)


def _updates(method: str, device: str, tmp, iterations: int = 2, **kw) -> dict[str, torch.Tensor]:
    """Synthetic tensors after a short run minus their initial values (the run loop, both devices)."""
    init = run(_av(method, device, iterations=0, **kw), tmp / f"{method}-{device}-init", progress=False)
    out = run(_av(method, device, iterations=iterations, **kw), tmp / f"{method}-{device}", progress=False)
    return {m: out.tensors[m] - init.tensors[m] for m in out.tensors}


def test_run_loop_dm(device, tmp_path):
    ref = _updates("dm", "cpu", tmp_path)
    got = _updates("dm", device, tmp_path)
    for m in ref:
        assert ref[m].abs().sum() > 0, f"dm moved no {m} values"
        assert_close(got[m], ref[m], UPDATE, f"dm run loop, {m} update on {device}")


@pytest.mark.parametrize("method,kw", [("avdd", {}), ("davdd", {"fresh_prob": 1.0})])
def test_av_steps(device, tmp_path, method, kw):
    ref = _updates(method, "cpu", tmp_path, **kw)
    got = _updates(method, device, tmp_path, **kw)
    for m in ref:
        assert_close(got[m], ref[m], UPDATE, f"{method} step, {m} update on {device}")


# --------------------------------------------------------------------------------- trajectory matching
@pytest.mark.parametrize("mode", ["unrolled", "reverse", "tesla"])
def test_trajectory_gradients(device, mode):
    """trajectory_match on a small two-branch linear model: loss and every gradient agree across devices."""
    g = torch.Generator().manual_seed(0)
    n, d, k = 12, 5, 3
    data0 = {"x": torch.randn(n, d, generator=g), "y": torch.randn(n, k, generator=g)}
    start, target = torch.randn(d * k + k, generator=g), torch.randn(d * k + k, generator=g)
    batches = [torch.randperm(n, generator=g)[:6] for _ in range(4)]

    def loss_fn(theta, idx, step, data):
        w, b = theta[: d * k].view(d, k), theta[d * k:]
        return ((torch.tanh(data["x"][idx] @ w) + b - data["y"][idx]) ** 2).mean()

    def compute(dev):
        data = {key: v.to(dev).requires_grad_(True) for key, v in data0.items()}
        etas = [torch.tensor([0.3], device=dev, requires_grad=True), torch.tensor([0.2], device=dev, requires_grad=True)]
        return trajectory_match(mode, loss_fn, start.to(dev), target.to(dev), [b.to(dev) for b in batches], etas, data,
                                (d * k, k))

    ref, got = compute("cpu"), compute(device)
    assert abs(got.loss - ref.loss) <= ONE_EVAL * abs(ref.loss)
    for key in ref.data_grads:
        assert got.data_grads[key].device.type == torch.device(device).type
        assert_close(got.data_grads[key], ref.data_grads[key], ONE_EVAL, f"{mode}: d loss / d {key}")
    for a, b in zip(got.eta_grads, ref.eta_grads):
        assert_close(a, b, ONE_EVAL, f"{mode}: d loss / d eta")


@pytest.fixture(scope="module")
def vl_buffers(tmp_path_factory):
    ds = tiny_retrieval()
    root = tmp_path_factory.mktemp("gpu-parity-buffers")
    out = {}
    for mode in ("full", "heads"):
        train_experts(ds, from_dict(ExpertConfig, experts_cfg(mode)), root / mode, progress=False)
        out[mode] = str(root / mode)
    return ds, out


def _vl(name: str, device: str, vl_buffers, **kw):
    ds, paths = vl_buffers
    mode = "heads" if name == "repblend" else "full"
    cls = get_method(name)
    params = {"iterations": 2, "syn_steps": 3, "minibatch": 5, "lr_img": 1.0, "lr_txt": 1.0, "lr_lr": 1e-5,
              "experts": experts_cfg(mode), "buffer": paths[mode], **kw}
    d = cls(from_dict(cls.Config, params, where="test"), ds, Budget(8, "pairs"), seed=1, device=device)
    seed_everything(derive_seed(1, "init"))
    d.init()
    return d


def _vl_iteration(name: str, device: str, vl_buffers, **kw):
    d = _vl(name, device, vl_buffers, **kw)
    seed_everything(derive_seed(1, "iter", 0))
    draw = d.draw()  # the draws are made on the CPU, so both devices replay the same iteration
    before = d.export()
    logs = d.apply(draw)
    after = d.export()
    upd = {m: after.tensors[m] - before.tensors[m] for m in after.tensors}
    upd.update({k: after.extras[k] - before.extras[k] for k in after.extras})
    return logs, upd


@pytest.mark.parametrize("name,kw", [
    ("mtt-vl", {}),  # unrolled student (memory grows with the steps)
    ("tesla-vl", {}),  # constant-memory TESLA gradient
    ("mtt-vl", {"gradient": "reverse"}),  # constant-memory exact gradient
    ("lors", {}),
    ("repblend", {}),
])
def test_vl_iteration(device, vl_buffers, name, kw):
    ref_logs, ref = _vl_iteration(name, "cpu", vl_buffers, **kw)
    logs, got = _vl_iteration(name, device, vl_buffers, **kw)
    assert logs["match_loss"] == pytest.approx(ref_logs["match_loss"], rel=ONE_EVAL)
    for k in ref:
        if ref[k].abs().sum() == 0:
            assert got[k].abs().sum() == 0, f"{name}: {k} moved on {device} only"
            continue
        assert_close(got[k], ref[k], UPDATE, f"{name} ({kw or 'defaults'}): {k} update on {device}")


def test_unrolled_equals_constant_memory_on_device(device, vl_buffers):
    """MTT-VL's exact gradient two ways on the device itself: unrolled (O(steps) memory) = reverse (O(1))."""
    _, a = _vl_iteration("mtt-vl", device, vl_buffers)
    _, b = _vl_iteration("mtt-vl", device, vl_buffers, gradient="reverse")
    for k in a:
        if a[k].abs().sum() > 0:
            assert_close(b[k], a[k], UPDATE, f"reverse vs unrolled, {k} on {device}")


# ---------------------------------------------------------------------------------------------------- MDM
def _mdm(device: str, vl_buffers):
    ds, paths = vl_buffers
    cls = get_method("mdm")
    params = {"iterations": 2, "batch_real": 16, "batch_syn": 6, "lr_img": 1.0, "lr_txt": 0.1, "init": "random",
              "buffer": paths["full"], "experts": experts_cfg("full"), "train_buffer": False}
    d = cls(from_dict(cls.Config, params, where="test"), ds, Budget(8, "pairs"), seed=1, device=device)
    seed_everything(derive_seed(1, "init"))
    d.init()
    return d


def test_mdm_step(device, vl_buffers):
    ref_d, d = _mdm("cpu", vl_buffers), _mdm(device, vl_buffers)
    seed_everything(derive_seed(1, "iter", 0))
    theta, _ = ref_d.teacher()  # one teacher (fresh heads come from the CPU RNG), given to both devices
    real_idx, syn_idx = torch.randperm(len(ref_d.dataset))[:16], torch.randperm(ref_d.n)[:6]
    x0 = ref_d.export()
    ref_logs = ref_d.apply(theta, real_idx, syn_idx)
    logs = d.apply(theta.to(device), real_idx, syn_idx.to(device))
    for k in ("match_loss", "infonce", "gke_agr", "gke_dis"):
        assert logs[k] == pytest.approx(ref_logs[k], rel=ONE_EVAL, abs=1e-6), k
    a, b = d.export(), ref_d.export()
    for m in ("image", "text"):
        assert_close(a.tensors[m] - x0.tensors[m], b.tensors[m] - x0.tensors[m], ONE_EVAL * 10, f"mdm {m} update")


def test_mdm_teacher_merge_on_device(device, vl_buffers):
    """Model-Stock merge of two expert checkpoints is computed on the device and equals the CPU merge."""
    from mmdistill.distill.model_stock import model_stock_merge

    d = _mdm("cpu", vl_buffers)
    t1, t2, t0 = d.buffer.load(0, 1), d.buffer.load(1, 2), d.buffer.load(0, 0)
    ref, _ = model_stock_merge(t1, t2, t0, d.flat.numels, 0.5)
    got, _ = model_stock_merge(t1.to(device), t2.to(device), t0.to(device), d.flat.numels, 0.5)
    assert_close(got, ref, ONE_EVAL, "model-stock merge")


# ----------------------------------------------------------------------------------------------- KD losses
def _kd_inputs(dev: str, dims) -> "KDInputs":  # noqa: F821
    from mmdistill.kd.base import KDInputs

    g = torch.Generator().manual_seed(3)
    b, c = 12, 5
    t = {"s_logits": torch.randn(b, c, generator=g), "t_logits": torch.randn(b, c, generator=g),
         "s_feat": torch.randn(b, dims.s_feat, generator=g), "t_feat": torch.randn(b, dims.t_feat, generator=g),
         "s_mid": torch.randn(b, dims.s_mid, 4, 4, generator=g), "t_mid": torch.randn(b, dims.t_mid, 4, 4, generator=g)}
    t = {k: v.to(dev).requires_grad_(k.startswith("s_")) for k, v in t.items()}
    return KDInputs(y=(torch.arange(b) % c).to(dev), epoch=1, **t)


def _kd_names() -> list[str]:
    from mmdistill.kd.registry import kd_method_names

    return kd_method_names()


@pytest.mark.parametrize("name", _kd_names())
def test_kd_losses(device, name):
    from mmdistill.kd.base import Dims
    from mmdistill.kd.registry import get_kd_loss

    cls = get_kd_loss(name)
    dims = Dims(s_feat=8, t_feat=10, s_mid=6, t_mid=7)
    torch.manual_seed(0)
    ref_loss = cls(cls.Config(), dims, 5, seed=0)
    loss = copy.deepcopy(ref_loss).to(device)

    def terms(mod, dev):
        inp = _kd_inputs(dev, dims)
        out = mod(inp)
        total = sum(out.values())
        grads = torch.autograd.grad(total, [inp.s_logits, inp.s_feat, inp.s_mid], allow_unused=True)
        return out, grads

    ref_out, ref_grads = terms(ref_loss, "cpu")
    out, grads = terms(loss, device)
    assert set(out) == set(ref_out)
    for k in ref_out:
        assert float(out[k].detach()) == pytest.approx(float(ref_out[k].detach()), rel=ONE_EVAL, abs=1e-6), f"{name}: term {k}"
    for a, b in zip(grads, ref_grads):
        assert (a is None) == (b is None)
        if b is not None and b.abs().sum() > 0:
            assert_close(a, b, ONE_EVAL, f"{name}: student gradient")


# ---------------------------------------------------------------------------------------------- evaluation
def test_evaluation_classification(device):
    from mmdistill.evaluate.classification import ClassificationProtocol, train_and_test

    tr, te = tiny_av("train", per_class=6), tiny_av("test", per_class=10)
    proto = from_dict(ClassificationProtocol, {"width": 8, "depth": 2, "epochs": 2, "min_steps": 30, "seeds": [0]})
    args = ({m: tr.tensors[m] for m in ("audio", "visual")}, tr.labels, {m: te.tensors[m] for m in ("audio", "visual")},
            te.labels, 4, 0)
    ref = train_and_test(proto, *args, device="cpu")
    got = train_and_test(proto, *args, device=device)
    step = 100.0 / te.labels.numel()
    for k in ref:
        assert abs(got[k] - ref[k]) <= 2 * step + 1e-9, f"{k}: {got[k]} on {device} vs {ref[k]} on cpu"


def test_evaluation_retrieval(device):
    from mmdistill.evaluate.retrieval import RetrievalProtocol, train_and_test

    tr, te = tiny_retrieval(n_img=16), tiny_retrieval(n_img=20, seed=5)
    proto = from_dict(RetrievalProtocol, {**VL_NET, "epochs": 2, "min_steps": 30, "seeds": [0]})
    args = (tr.tensors["image"], tr.tensors["text"], te.tensors["image"], te.tensors["text"], te.text_to_image, 0)
    ref = train_and_test(proto, *args, device="cpu")
    got = train_and_test(proto, *args, device=device)
    step = 100.0 / te.text_to_image.numel()
    for k in ref:
        assert abs(got[k] - ref[k]) <= 2 * step + 1e-9, f"{k}: {got[k]} on {device} vs {ref[k]} on cpu"


# ------------------------------------------------------------------------------------------ KD trainer
@pytest.mark.parametrize("method", ["kd", "fd-cmkd"])
def test_kd_training(device, method):
    """A whole cross-modal KD run (teacher, then student with the loss) on the device vs on the CPU."""
    from mmdistill.data.paired import PairedDataset
    from mmdistill.kd.config import KDRunConfig
    from mmdistill.kd.trainer import run_seed

    def toy(split, n, seed):
        g = torch.Generator().manual_seed(seed)
        y = torch.arange(n) % 3
        return PairedDataset("toy-av", split, "classification",
                             {"audio": torch.randn(n, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1),
                              "visual": torch.randn(n, 1, 6, 6, generator=g) + y.view(-1, 1, 1, 1)}, labels=y)

    def one(dev):
        cfg = from_dict(KDRunConfig, {"dataset": "toy-av", "method": method, "teacher_modality": "audio",
                                      "student_modality": "visual", "device": dev,
                                      "student_train": {"epochs": 2, "batch_size": 16},
                                      "teacher_train": {"epochs": 2, "batch_size": 16},
                                      "student": {"kwargs": {"width": 8}}, "teacher": {"kwargs": {"width": 8}}})
        return run_seed(cfg, toy("train", 48, 0), toy("test", 30, 1), seed=0)

    ref, got = one("cpu"), one(device)
    step = 100.0 / 30
    for k in ("student_acc", "teacher_acc"):
        assert abs(got[k] - ref[k]) <= 2 * step + 1e-9, f"{method} {k}: {got[k]} on {device} vs {ref[k]} on cpu"
