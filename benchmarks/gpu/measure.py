"""Seconds per iteration and peak memory of every distillation family at the papers' shapes.

Question: what does one outer iteration of each method cost on this device (and how does it compare with the
published figures and with the reference implementations, see refdrive.py)?

Rows (randomly initialised networks and random data of the papers' shapes: cost does not depend on the values):

* image-text at Flickr30k shapes: 224×224 images, 768-d text vectors (BERT-CLS space), 500 pairs requested
  (budget fairness leaves 499), NFNet-l0 image encoder (timm; our ResNet-18 at width 64 when timm is missing),
  text head 768 → 2304 → 2304; MTT-VL (unrolled, minibatch 100), TESLA-VL at 5 and 20 student steps (memory
  should be flat), LoRS (Flickr-500 script: minibatch 40, rank 20), RepBlend (minibatch 20, heads), MDM
  (real batch 256, synthetic 64), CovMatch/RAHA when registered, and one expert-training step (full model, and
  projection heads over frozen features), extrapolated to minutes per expert trajectory (10 epochs of the
  145,000 Flickr30k training captions at batch 128);
* audio-visual at VGGS-10K shapes: 10 classes, 3×224×224 frames, 1×128×56 log-mel, ConvNet width 128 (visual
  depth 5, audio depth 3), factor 2, IPC 1 / 10 / 20, 128 real pairs per class: DM, AVDD, DAVDD (one random
  encoder pair and decoupler in memory in place of the pretrained bank, all loss terms on).

Expert buffers are in memory (random trajectories of the right size) and the real data are random tensors on the
CPU, so disk reads are not timed. Each row: one warm-up iteration, then ``--iters`` timed iterations (fewer when a
row would pass ``--row-s``); peak memory is ``torch.cuda.max_memory_allocated`` over the row (CPU: the process's
peak RSS so far, a high-water mark). A row that fails (out of memory, an error) records the error and the run
goes on; rows not reached within ``--budget-s`` are recorded as skipped.

``--tiny``: the same rows at tiny shapes on the CPU (a smoke test, < 2 min). Output: JSON (``--out``), written
after every row, schema ``mmdistill.gpu_bench`` version 1 (see :func:`header`).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

SCHEMA = "mmdistill.gpu_bench"
VERSION = 1
FLICKR_TRAIN_CAPTIONS = 145_000  # Karpathy Flickr30k train split: 29,000 images x 5 captions
EXPERT_EPOCHS = 10  # the papers' buffers: 10 epochs per expert trajectory
EXPERT_BATCH = 128


# ------------------------------------------------------------------------------------------------- shapes
@dataclass
class VLShapes:
    image: tuple[int, int, int] = (3, 224, 224)
    text_dim: int = 768
    pairs: int = 500
    real_images: int = 600  # random real pool (MDM draws 256 per iteration)
    captions_per_image: int = 5
    image_arch: str = "nfnet_l0"
    net_kwargs: dict[str, Any] = field(default_factory=dict)
    embed_dim: int = 2304
    text_hidden: int = 2304
    mtt_minibatch: int = 100
    syn_steps: int = 8
    tesla_steps: tuple[int, int] = (5, 20)
    lors_minibatch: int = 40
    repblend_minibatch: int = 20
    rank: int = 20
    mdm_real: int = 256
    mdm_syn: int = 64
    expert_batch: int = EXPERT_BATCH


@dataclass
class AVShapes:
    classes: int = 10
    visual: tuple[int, int, int] = (3, 224, 224)
    audio: tuple[int, int, int] = (1, 128, 56)
    per_class: int = 150  # random real pool per class (128 drawn per iteration)
    batch_real: int = 128
    ipcs: tuple[int, ...] = (1, 10, 20)
    factor: int = 2
    net: dict[str, Any] = field(default_factory=lambda: {"width": 128, "audio_depth": 3, "visual_depth": 5})


def paper_shapes() -> tuple[VLShapes, AVShapes]:
    vl = VLShapes()
    try:
        import timm  # noqa: F401
    except ImportError:  # the papers' NFNet needs timm; the closest registered net otherwise
        vl.image_arch, vl.net_kwargs, vl.embed_dim = "resnet18", {"width": 64, "norm": "instance"}, 512
    return vl, AVShapes()


def tiny_shapes() -> tuple[VLShapes, AVShapes]:
    vl = VLShapes(image=(3, 16, 16), text_dim=12, pairs=8, real_images=12, captions_per_image=2, image_arch="convnet",
                  net_kwargs={"width": 4, "depth": 2, "norm": "instance"}, embed_dim=8, text_hidden=16, mtt_minibatch=4,
                  syn_steps=3, tesla_steps=(2, 4), lors_minibatch=4, repblend_minibatch=4, rank=2, mdm_real=8,
                  mdm_syn=4, expert_batch=8)
    av = AVShapes(classes=3, visual=(3, 16, 16), audio=(1, 16, 8), per_class=6, batch_real=4, ipcs=(1, 2),
                  net={"width": 8, "audio_depth": 2, "visual_depth": 2, "audio_final_pool": [2, 2],
                       "visual_final_pool": [2, 2], "audio_first_pad": "auto"})
    return vl, av


# ------------------------------------------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


def reset(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def time_row(step: Callable[[int], Any], device: torch.device, iters: int, row_s: float) -> dict[str, Any]:
    """One warm-up call, then up to ``iters`` timed calls (stopping early once ``row_s`` is spent)."""
    sync(device)
    t0 = time.perf_counter()
    step(0)
    sync(device)
    warm = time.perf_counter() - t0
    times = []
    for i in range(iters):
        if times and sum(times) + warm > row_s:
            break
        t0 = time.perf_counter()
        step(i + 1)
        sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"s_per_iter": times[len(times) // 2] if times else warm, "s_per_iter_all": [round(t, 4) for t in times],
            "warmup_s": round(warm, 4), "timed_iters": len(times), "peak_bytes": peak_bytes(device)}


# ---------------------------------------------------------------------------------------------- image-text
class MemoryBuffer:
    """An expert buffer held in memory: random trajectories of the student's parameter size (cost only)."""

    def __init__(self, net, mode: str, sizes: tuple[int, int], theta0: torch.Tensor, epochs: int, experts: int = 2):
        g = torch.Generator().manual_seed(0)
        self.net, self.mode, self.sizes, self.epochs = net, mode, sizes, epochs
        self.encoder_path = None
        self.path = Path("<memory>")
        self.manifest = {"config_key": "memory", "mode": mode}
        step = 1e-3 * theta0.abs().mean().clamp_min(1e-3)
        self.traj = [[theta0 + step * e * torch.randn(theta0.shape, generator=g) for e in range(epochs + 1)]
                     for _ in range(experts)]

    @property
    def num_experts(self) -> int:
        return len(self.traj)

    def load(self, expert: int, epoch: int) -> torch.Tensor:
        return self.traj[expert][epoch]


def vl_dataset(sh: VLShapes):
    from mmdistill.data.paired import PairedDataset

    g = torch.Generator().manual_seed(0)
    n = sh.real_images
    t2i = torch.arange(n).repeat_interleave(sh.captions_per_image)
    return PairedDataset("flickr30k-shapes", "train", "retrieval",
                         {"image": torch.randn(n, *sh.image, generator=g),
                          "text": torch.randn(n * sh.captions_per_image, sh.text_dim, generator=g)},
                         text_to_image=t2i, meta={"params": {}})


def vl_net(sh: VLShapes):
    from mmdistill.experts.model import VLNetConfig

    kw = sh.net_kwargs
    return VLNetConfig(image_arch=sh.image_arch, width=kw.get("width", 32), depth=kw.get("depth", 3),
                       norm=kw.get("norm", "instance"), embed_dim=sh.embed_dim, text_hidden=sh.text_hidden)


def memory_buffer(sh: VLShapes, mode: str, epochs: int) -> MemoryBuffer:
    from mmdistill.experts.model import FlatDualEncoder, build_model

    net = vl_net(sh)
    torch.manual_seed(0)
    flat = FlatDualEncoder(build_model(net, sh.image, sh.text_dim), mode, net.temperature)
    return MemoryBuffer(net, mode, flat.sizes, flat.flat(), epochs)


def vl_distiller(name: str, params: dict[str, Any], sh: VLShapes, device: torch.device, buffers: dict):
    from mmdistill.config import from_dict
    from mmdistill.distill import Budget, get_method
    from mmdistill.seed import derive_seed, seed_everything

    cls = get_method(name)
    cfg = from_dict(cls.Config, params, where=f"{name} row")
    mode = getattr(cfg, "student", None) or getattr(getattr(cfg, "experts", None), "mode", "full")
    d = cls(cfg, vl_dataset(sh), Budget(sh.pairs, "pairs"), 0, device=str(device))
    d._open_buffer = lambda: buffers[mode]  # the in-memory buffer instead of one on disk
    seed_everything(derive_seed(0, "init"))
    d.init()
    return d


def vl_rows(sh: VLShapes, precision: str) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(row name, method, params, shape notes) for the image-text family."""
    tm = {"syn_steps": sh.syn_steps, "expert_epochs": 1, "max_start_epoch": 2, "lr_img": 100.0, "lr_txt": 100.0,
          "precision": precision}
    lors = {**tm, "gradient": "tesla", "loss": "wbce-eps", "batching": "chunks", "similarity": "lowrank",
            "sim_rank": sh.rank, "sim_alpha": 0.01, "lr_sim": 100.0}
    rows = [
        ("mtt-vl", "mtt-vl", {**tm, "gradient": "unrolled", "minibatch": sh.mtt_minibatch},
         {"minibatch": sh.mtt_minibatch, "syn_steps": sh.syn_steps, "gradient": "unrolled"}),
        ("mtt-vl-reverse", "mtt-vl", {**tm, "gradient": "reverse", "minibatch": sh.mtt_minibatch},
         {"minibatch": sh.mtt_minibatch, "syn_steps": sh.syn_steps, "gradient": "reverse (exact, constant memory)"}),
    ]
    for steps in sh.tesla_steps:
        rows.append((f"tesla-vl-{steps}steps", "tesla-vl",
                     {**tm, "syn_steps": steps, "gradient": "tesla", "loss": "wbce-eps", "batching": "chunks",
                      "minibatch": sh.mtt_minibatch},
                     {"minibatch": sh.mtt_minibatch, "syn_steps": steps, "gradient": "tesla"}))
    rows += [
        ("lors", "lors", {**lors, "minibatch": sh.lors_minibatch, "max_start_epoch": 3},
         {"minibatch": sh.lors_minibatch, "syn_steps": sh.syn_steps, "rank": sh.rank, "gradient": "tesla"}),
        ("repblend", "repblend", {**lors, "minibatch": sh.repblend_minibatch, "student": "heads", "blend": True,
                                  "experts": {"mode": "heads"}},
         {"minibatch": sh.repblend_minibatch, "syn_steps": sh.syn_steps, "rank": sh.rank, "gradient": "tesla",
          "student": "heads"}),
        ("mdm", "mdm", {"init": "random", "teacher": "mixed", "min_epoch": 1, "max_epoch": 3, "batch_real": sh.mdm_real,
                        "batch_syn": sh.mdm_syn, "train_buffer": False, "precision": precision},
         {"batch_real": sh.mdm_real, "batch_syn": sh.mdm_syn, "teacher": "mixed"}),
    ]
    from mmdistill.distill import METHODS

    for extra in ("covmatch", "raha"):
        if extra in METHODS.names():
            rows.append((extra, extra, {}, {"note": "registered method, default config"}))
    return rows


def expert_rows(sh: VLShapes, device: torch.device) -> list[tuple[str, Callable[[], Callable[[int], Any]], dict]]:
    """Expert-training steps: full model (MTT-VL/LoRS/MDM buffers) and heads over frozen features (RepBlend)."""
    from mmdistill.losses.contrastive import info_nce
    from mmdistill.experts.model import build_model

    def full():
        torch.manual_seed(0)
        model = build_model(vl_net(sh), sh.image, sh.text_dim).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        x = torch.randn(sh.expert_batch, *sh.image, device=device)
        t = torch.randn(sh.expert_batch, sh.text_dim, device=device)

        def step(_):
            loss = info_nce(model.logits(x, t))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    def frozen_forward():
        torch.manual_seed(0)
        enc = build_model(vl_net(sh), sh.image, sh.text_dim).image_encoder.to(device).eval()
        x = torch.randn(sh.expert_batch, *sh.image, device=device)

        def step(_):
            with torch.no_grad():
                enc.embed(x)
        return step

    def heads():
        torch.manual_seed(0)
        model = build_model(vl_net(sh), sh.image, sh.text_dim).to(device)
        params = [*model.image_head.parameters(), *model.text_head.parameters()]
        opt = torch.optim.SGD(params, lr=0.1)
        f = torch.randn(sh.expert_batch, model.image_encoder.feat_dim, device=device)
        t = torch.randn(sh.expert_batch, sh.text_dim, device=device)

        def step(_):
            zi = torch.nn.functional.normalize(model.image_head(f), dim=-1)
            zt = model.encode_text(t)
            loss = info_nce(model.log_scale.exp().clamp(max=100.0) * zi @ zt.T)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    b = {"batch": sh.expert_batch}
    return [("expert-step-full", full, {**b, "what": "SGD step of the whole dual encoder (MTT-VL/LoRS/MDM buffers)"}),
            ("expert-forward-frozen", frozen_forward, {**b, "what": "frozen image-encoder forward (heads buffers)"}),
            ("expert-step-heads", heads, {**b, "what": "SGD step of the two projection heads on features"})]


def trajectory_minutes(rows: dict[str, dict]) -> dict[str, Any]:
    """Minutes per expert trajectory from the step rows: 10 epochs of the Flickr30k train captions at batch 128."""
    steps = EXPERT_EPOCHS * math.ceil(FLICKR_TRAIN_CAPTIONS / EXPERT_BATCH)
    out: dict[str, Any] = {"steps_per_trajectory": steps, "epochs": EXPERT_EPOCHS, "captions": FLICKR_TRAIN_CAPTIONS,
                           "batch": EXPERT_BATCH}
    s = {k: rows[k].get("s_per_iter") for k in ("expert-step-full", "expert-forward-frozen", "expert-step-heads")
         if k in rows and rows[k].get("status") == "ok"}
    if "expert-step-full" in s:
        out["full_min"] = round(steps * s["expert-step-full"] / 60, 2)
    if "expert-forward-frozen" in s and "expert-step-heads" in s:
        # the reference's heads buffers run the frozen encoder at every step; ours encodes each image once
        out["heads_encoder_every_step_min"] = round(steps * (s["expert-forward-frozen"] + s["expert-step-heads"]) / 60, 2)
        once = math.ceil(FLICKR_TRAIN_CAPTIONS / 5 / EXPERT_BATCH) * s["expert-forward-frozen"]
        out["heads_features_once_min"] = round((once + steps * s["expert-step-heads"]) / 60, 2)
    return out


# -------------------------------------------------------------------------------------------- audio-visual
def av_dataset(sh: AVShapes):
    from mmdistill.data.paired import PairedDataset

    g = torch.Generator().manual_seed(0)
    n = sh.classes * sh.per_class
    lab = torch.arange(sh.classes).repeat_interleave(sh.per_class)
    return PairedDataset("vggs10k-shapes", "train", "classification",
                         {"audio": torch.randn(n, *sh.audio, generator=g), "visual": torch.randn(n, *sh.visual, generator=g)},
                         labels=lab, class_names=[str(c) for c in range(sh.classes)], meta={"params": {}})


def av_rows(sh: AVShapes, precision: str) -> list[tuple[str, str, int, dict[str, Any]]]:
    base = {"batch_real": sh.batch_real, "init": "real", "factor": sh.factor, "net": dict(sh.net), "precision": precision}
    rows = []
    for method in ("dm", "avdd", "davdd"):
        for ipc in sh.ipcs:
            p = dict(base)
            if method == "davdd":
                p["fresh_prob"] = 1.0  # no bank is trained at init; av_distiller puts one random pair in its place
                p["precision"] = "fp32"  # DAVDD implements fp32 only
            rows.append((f"{method}-ipc{ipc}", method, ipc, p))
    return rows


def av_distiller(method: str, ipc: int, params: dict[str, Any], ds, device: torch.device):
    from mmdistill.config import from_dict
    from mmdistill.distill import Budget, get_method
    from mmdistill.seed import derive_seed, seed_everything

    cls = get_method(method)
    d = cls(from_dict(cls.Config, params, where=f"{method} row"), ds, Budget(ipc, "ipc"), 0, device=str(device))
    seed_everything(derive_seed(0, "init"))
    d.init()
    if method == "davdd":
        memory_bank(d)
    return d


def memory_bank(d) -> None:
    """A one-pair encoder bank in memory for DAVDD (random encoders and decoupler: training a bank at these shapes
    costs far more than the run), so its iterations run every term (private, common, intermodal, sample, align)."""
    from dataclasses import replace

    from mmdistill.experts.bank import Decoupler

    enc = d.random_nets()
    dec = Decoupler({m: int(enc[m].feat_dim) for m in enc}, d.dec_cfg, d.num_classes).to(d.device).eval()
    for q in dec.parameters():
        q.requires_grad_(False)
    d.encoders, d.decouplers = [enc], [dec]
    d.proto = torch.zeros(1, d.num_classes, 2, d.cfg.decoupler.dim, device=d.device)
    d.proto_seen = torch.zeros(1, d.num_classes, dtype=torch.bool, device=d.device)
    d.cfg = replace(d.cfg, fresh_prob=0.0)


# ------------------------------------------------------------------------------------------------- the run
def header(device: torch.device, tiny: bool, precision: str) -> dict[str, Any]:
    import mmdistill

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"schema": SCHEMA, "version": VERSION, "device": {"type": device.type, "name": name},
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "mmdistill": getattr(mmdistill, "__version__", None), "tiny": tiny, "precision": precision,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": []}


def junit_summary(path: Path) -> dict[str, Any]:
    """Counts of a pytest JUnit XML file (tests, failures, errors, skipped) and the names of failing tests."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    out: dict[str, Any] = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    out["failed"] = [f"{c.get('classname')}::{c.get('name')}" for c in root.iter("testcase")
                     if c.find("failure") is not None or c.find("error") is not None][:50]
    out["file"] = path.name
    return out


def write(out: Path, doc: dict[str, Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU (smoke test)")
    ap.add_argument("--out", default="", help="JSON file (default benchmarks/gpu.json; with --tiny benchmarks/gpu-out/gpu.json)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--iters", type=int, default=3, help="timed iterations per row (after one warm-up)")
    ap.add_argument("--row-s", type=float, default=30.0, help="stop timing a row after this many seconds")
    ap.add_argument("--budget-s", type=float, default=300.0, help="skip the remaining rows after this many seconds")
    ap.add_argument("--only", default="", help="comma-separated row-name prefixes to run (default: all)")
    ap.add_argument("--ref-rows", default="", help="JSON rows of refdrive.py to include (reference implementations)")
    ap.add_argument("--tests-xml", default="", help="JUnit XML of the CUDA test run to summarise (run.sh)")
    args = ap.parse_args(argv)

    if args.tiny and args.device == "auto":
        args.device = "cpu"
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    vl, av = tiny_shapes() if args.tiny else paper_shapes()
    out = Path(args.out or ("benchmarks/gpu-out/gpu.json" if args.tiny else "benchmarks/gpu.json"))
    doc = header(device, args.tiny, args.precision)
    doc["shapes"] = {"image_text": {k: v for k, v in vars(vl).items()}, "audio_visual": {k: v for k, v in vars(av).items()}}
    if args.ref_rows and Path(args.ref_rows).is_file():
        doc["rows"].extend(json.loads(Path(args.ref_rows).read_text(encoding="utf-8")).get("rows", []))
    if args.tests_xml and Path(args.tests_xml).is_file():
        doc["tests"] = junit_summary(Path(args.tests_xml))
    only = [s for s in args.only.split(",") if s]
    t_start = time.perf_counter()

    def wanted(name: str) -> bool:
        return not only or any(name.startswith(o) for o in only)

    def record(name: str, family: str, impl: str, shapes: dict, fn: Callable[[], dict[str, Any]]) -> dict:
        row: dict[str, Any] = {"name": name, "family": family, "impl": impl, "shapes": shapes}
        if time.perf_counter() - t_start > args.budget_s:
            row.update(status="skipped", reason=f"time budget {args.budget_s:.0f} s spent")
        else:
            reset(device)
            t0 = time.perf_counter()
            try:
                row.update(fn())
                row["status"] = "ok"
            except torch.cuda.OutOfMemoryError as e:
                row.update(status="oom", error=str(e).splitlines()[0][:300], peak_bytes=peak_bytes(device))
            except Exception as e:  # a failing row is a result, not the end of the run
                row.update(status="error", error=f"{type(e).__name__}: {e}"[:500],
                           trace=traceback.format_exc(limit=4)[-1500:])
            row["wall_s"] = round(time.perf_counter() - t0, 2)
        doc["rows"].append(row)
        write(out, doc)
        msg = f"{row['s_per_iter']:.3f} s/iter, peak {row['peak_bytes'] / 2**30:.2f} GiB" if row["status"] == "ok" else row.get("error", row.get("reason", ""))
        print(f"[measure] {name}: {row['status']} {msg}", file=sys.stderr, flush=True)
        reset(device)
        return row

    # priority order (rows past --budget-s are skipped): the rows the targets compare (RepBlend, LoRS, TESLA-VL),
    # MDM, the audio-visual rows, the expert steps, then MTT-VL (the costliest, possibly out of memory)
    rows = vl_rows(vl, args.precision)
    order = ["repblend", "lors", "tesla-vl", "mdm"]  # then anything else (CovMatch, RAHA)
    first = sorted((r for r in rows if not r[0].startswith("mtt-vl")),
                   key=lambda r: next((i for i, o in enumerate(order) if r[0].startswith(o)), len(order)))
    last = [r for r in rows if r[0].startswith("mtt-vl")]
    buffers: dict[str, MemoryBuffer] = {}

    def vl_block(block) -> None:
        for name, method, params, notes in block:
            if not wanted(name):
                continue
            if not buffers:
                buffers.update(full=memory_buffer(vl, "full", 3), heads=memory_buffer(vl, "heads", 3))

            def vl_fn(method=method, params=params):
                d = vl_distiller(method, params, vl, device, buffers)
                res = time_row(d.step, device, args.iters, args.row_s)
                res["pairs_used"] = int(d.n)
                res["theta_numel"] = int(d.flat.numel) if hasattr(d, "flat") else None  # one student parameter vector
                return res
            record(name, "image-text", "mmdistill", {**notes, "image": list(vl.image), "text_dim": vl.text_dim,
                                                      "pairs": vl.pairs, "image_arch": vl.image_arch}, vl_fn)

    vl_block(first)
    ds_av = av_dataset(av) if any(wanted(r[0]) for r in av_rows(av, args.precision)) else None
    for name, method, ipc, params in av_rows(av, args.precision):
        if wanted(name):
            def av_fn(method=method, ipc=ipc, params=params):
                d = av_distiller(method, ipc, params, ds_av, device)
                return time_row(d.step, device, args.iters, args.row_s)
            record(name, "audio-visual", "mmdistill", {"ipc": ipc, "factor": av.factor, "classes": av.classes,
                                                       "visual": list(av.visual), "audio": list(av.audio),
                                                       "width": av.net["width"], "batch_real": av.batch_real}, av_fn)
    del ds_av
    experts: dict[str, dict] = {}
    for name, build, shapes in expert_rows(vl, device):
        if wanted(name):
            experts[name] = record(name, "expert", "mmdistill", {**shapes, "image": list(vl.image),
                                                                  "image_arch": vl.image_arch},
                                   lambda build=build: time_row(build(), device, args.iters, args.row_s))
    if experts:
        doc["expert_trajectory"] = trajectory_minutes(experts)
        write(out, doc)
    vl_block(last)
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    doc["wall_s"] = round(time.perf_counter() - t_start, 1)
    write(out, doc)
    print(f"[measure] wrote {out} ({len(doc['rows'])} rows, {doc['wall_s']} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
