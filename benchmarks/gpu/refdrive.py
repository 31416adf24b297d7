"""Time the reference LoRS / RepBlend implementations at Flickr30k-500 shapes on this GPU (cost only).

Question: what do the authors' own distillation loops cost per iteration, and at what peak memory, on the same
GPU as measure.py's rows (so ours/reference is measured in one run)?

The reference code is NOT part of this repository: it is read from the directory given as ``--ref DIR``
(a copy of github.com/silicx/LoRS_Distill or github.com/zhangxin-xd/RepBlend; benchmarks/gpu/README.md says how
it gets there). Their scripts run unchanged, with their own argument parser, from their published Flickr-500
command lines (``sh/distill_flickr_lors_500.sh``, ``scripts/distill_flickr_repblend.sh``); this driver only
supplies what the machine lacks:

* random data of the right shapes instead of Flickr30k and its BERT embedding files (their
  ``get_dataset*``, ``load_or_process_file``, ``get_*images_texts``), random 768-d text vectors;
* random expert buffers of the right parameter sizes (one expert, epochs 0..3), written to a temporary directory
  in their list-of-lists ``img_replay_buffer_0.pt`` / ``txt_replay_buffer_0.pt`` format;
* NFNet-l0 with random weights (``--image_pretrained ''``, argparse's bool of an empty string) and a randomly
  initialised BERT in place of the local ``bert-base-uncased`` folder (cached once, as their loader is);
* stand-ins for packages absent here and unused by the distillation loop (wandb, clip, kornia) when missing;
* an iteration clock: their loop's ``tqdm`` is replaced by an iterator that synchronises CUDA and records the
  time between iterations; evaluation is off (``--eval_it 0``).

The reference code needs CUDA (it moves modules with ``.to('cuda')``). ``--cpu-dry-run`` (a test of this driver
on a machine without a GPU) maps those moves to the CPU, shrinks the shapes (32×32 images, 8 pairs, 2 student
steps) and stands in for torchvision when it cannot be imported; its timings mean nothing. Output: JSON rows (same
fields as measure.py's) in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path
from typing import Any

IMPLS = {
    "lors": {
        "script": "distill_tesla_lors.py",
        "argv": ["--dataset=flickr", "--image_encoder=nfnet", "--text_encoder=bert", "--syn_steps=8",
                 "--expert_epochs=1", "--max_start_epoch=3", "--lr_img=1000", "--lr_txt=1000", "--lr_lr=1e-2",
                 "--lr_teacher_img", "0.1", "--lr_teacher_txt", "0.1", "--lr_sim=100", "--sim_type", "lowrank",
                 "--sim_rank", "20", "--alpha", "0.01", "--num_queries", "499", "--mini_batch_size=40",
                 "--loss_type", "WBCE"],
        "source": "sh/distill_flickr_lors_500.sh",
        "projection_only": False,
    },
    "repblend": {
        "script": "distill_repblend.py",
        "argv": ["--dataset=flickr", "--image_encoder=nfnet", "--text_encoder=bert", "--syn_steps=8",
                 "--expert_epochs=1", "--max_start_epoch=3", "--lr_img=1000", "--lr_txt=1000", "--lr_lr=1e-2",
                 "--lr_teacher_img", "0.1", "--lr_teacher_txt", "0.1", "--lr_sim=100", "--sim_type", "lowrank",
                 "--sim_rank", "20", "--alpha", "0.01", "--num_queries", "499", "--mini_batch_size=20",
                 "--loss_type", "WBCE"],
        "source": "scripts/distill_flickr_repblend.sh (500 pairs)",
        "projection_only": True,
    },
}
PAIRS, TEXT_DIM, IMAGE = 499, 768, (3, 224, 224)
BUFFER_EPOCHS = 3  # max_start_epoch 3 draws start epochs 0..2, targets up to 3


def argv_for(impl: str, buffer_dir: str, iterations: int) -> list[str]:
    """The reference script's command line: its published flags plus what this driver sets."""
    spec = IMPLS[impl]
    return [spec["script"], *spec["argv"], f"--buffer_path={buffer_dir}", "--Iteration", str(iterations - 1),
            "--eval_it", "0", "--image_pretrained", "", "--disabled_wandb", "True", "--name", f"refdrive-{impl}"]


DRY_RUN_ARGV = ["--num_queries", "8", "--mini_batch_size", "4", "--syn_steps", "2"]
DRY_RUN_IMAGE, DRY_RUN_PAIRS = (3, 32, 32), 8


def stub_missing(names=("wandb", "clip", "kornia", "cv2")) -> list[str]:
    """Empty stand-ins for packages the reference imports but the distillation loop does not use."""
    stubbed = []
    for name in names:
        try:
            __import__(name)
            if name != "wandb":
                continue
        except ImportError:
            pass
        if name == "wandb":  # always stubbed: no logging service, no network
            run = types.SimpleNamespace(name="refdrive")
            mod = types.SimpleNamespace(init=lambda *a, **k: run, log=lambda *a, **k: None, finish=lambda *a, **k: None,
                                        Html=lambda *a, **k: None, Image=lambda *a, **k: None,
                                        Histogram=lambda *a, **k: None, run=run)
        else:
            mod = types.ModuleType(name)
            mod.augmentation = types.SimpleNamespace()  # kornia.augmentation attribute lookups at import time
        sys.modules[name] = mod  # type: ignore[assignment]
        stubbed.append(name)
    return stubbed


class Clock:
    """Wraps the reference's iteration range: CUDA-synchronised timestamps at the start of every iteration."""

    def __init__(self, torch):
        self.torch = torch
        self.stamps: list[float] = []

    def __call__(self, iterable, *a, **k):
        for x in iterable:
            self.torch.cuda.synchronize()
            self.stamps.append(time.perf_counter())
            yield x
        self.torch.cuda.synchronize()
        self.stamps.append(time.perf_counter())


def write_buffers(torch, networks, args_ns, out: Path, projection_only: bool) -> None:
    """One random expert trajectory in the reference's buffer format, sized from its own model."""
    torch.manual_seed(0)
    net = networks.CLIPModel_full(args_ns)
    img_mod = net.image_projection if projection_only else net.image_encoder
    img0 = [p.detach().cpu().clone() for p in img_mod.parameters()]
    txt0 = [p.detach().cpu().clone() for p in net.text_projection.parameters()]

    def traj(p0):
        return [[p + 1e-3 * e * torch.randn_like(p) for p in p0] for e in range(BUFFER_EPOCHS + 1)]

    torch.save([traj(img0)], out / "img_replay_buffer_0.pt")
    torch.save([traj(txt0)], out / "txt_replay_buffer_0.pt")
    del net


class _AnyMeta(type):
    """Classes whose every attribute is another such class (a stand-in for a missing package's API)."""

    def __getattr__(cls, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _AnyMeta(attr, (), {"__init__": lambda self, *a, **k: None, "__call__": lambda self, *a, **k: None})


class _StubFinder:
    """Import hook: any ``<root>.*`` module becomes a permissive stand-in (``--cpu-dry-run`` without torchvision)."""

    def __init__(self, root: str):
        self.root = root

    def find_spec(self, name, path=None, target=None):
        import importlib.machinery

        if name == self.root or name.startswith(self.root + "."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        mod = types.ModuleType(spec.name)
        mod.__path__ = []  # a package: submodule imports go through this finder too

        def __getattr__(attr):
            if attr.startswith("__"):
                raise AttributeError(attr)
            return _AnyMeta(attr, (), {"__init__": lambda self, *a, **k: None, "__call__": lambda self, *a, **k: None})
        mod.__getattr__ = __getattr__  # type: ignore[attr-defined]
        return mod

    def exec_module(self, module):
        pass


def cpu_dry_run(torch) -> None:
    """Map the reference's CUDA moves to the CPU and make the CUDA clock/memory calls no-ops (driver tests only)."""
    def cpu(x):
        if isinstance(x, str) and x.startswith("cuda"):
            return "cpu"
        if isinstance(x, torch.device) and x.type == "cuda":
            return torch.device("cpu")
        return x

    def wrap(orig):
        def to(self, *a, **k):
            if "device" in k:
                k["device"] = cpu(k["device"])
            return orig(self, *(cpu(x) for x in a), **k)
        return to

    torch.nn.Module.to = wrap(torch.nn.Module.to)
    torch.Tensor.to = wrap(torch.Tensor.to)
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    for name in ("synchronize", "empty_cache", "reset_peak_memory_stats"):
        setattr(torch.cuda, name, lambda *a, **k: None)
    torch.cuda.max_memory_allocated = lambda *a, **k: 0


def drive(impl: str, ref: Path, iterations: int, dry_run: bool = False) -> dict[str, Any]:
    spec = IMPLS[impl]
    ref = ref.resolve()  # the script runs from a temporary directory
    image, pairs = (DRY_RUN_IMAGE, DRY_RUN_PAIRS) if dry_run else (IMAGE, PAIRS)
    script = ref / spec["script"]
    if not script.is_file():
        raise FileNotFoundError(f"{script}: not found; --ref must be a copy of the {impl} repository "
                                "(benchmarks/gpu/README.md)")
    stubbed = stub_missing()
    sys.path.insert(0, str(ref))
    import numpy as np
    import torch

    if dry_run:
        cpu_dry_run(torch)
        try:
            import torchvision  # noqa: F401
        except Exception:  # absent, or a build that does not match this torch
            for k in [k for k in sys.modules if k == "torchvision" or k.startswith("torchvision.")]:
                del sys.modules[k]
            sys.meta_path.insert(0, _StubFinder("torchvision"))
            stubbed.append("torchvision")
    elif not torch.cuda.is_available():
        raise RuntimeError("the reference implementations need CUDA (they call .to('cuda'))")
    import data as ref_data  # the reference's packages (on sys.path first)
    import src.networks as networks
    import src.vl_distill_utils as vdu
    import tqdm as tqdm_mod

    class Train:
        def get_all_captions(self):
            return [f"caption {i}" for i in range(4 * pairs)]

    def fake_dataset(args):
        return None, None, Train(), None

    def fake_embeddings(file_type, process_func, args, data_source):
        n = 5000 if file_type == "text" else 4 * pairs
        return {"bert_test_embed": np.random.default_rng(0).standard_normal((n, TEXT_DIM)).astype(np.float32)}

    def fake_pairs(n, *a, **k):
        g = torch.Generator().manual_seed(0)
        return torch.randn(n, *image, generator=g), torch.randn(n, TEXT_DIM, generator=g)

    from transformers import BertConfig, BertModel

    bert = BertModel(BertConfig())  # bert-base-uncased's shape, random weights, built once (their loader caches)
    networks.get_bert_stuff = lambda: (bert, None)
    for name in ("get_dataset_flickr", "get_dataset"):
        if hasattr(ref_data, name):
            setattr(ref_data, name, fake_dataset)
    vdu.load_or_process_file = fake_embeddings
    for name in ("get_images_texts", "get_random_images_texts"):
        if hasattr(vdu, name):
            setattr(vdu, name, fake_pairs)
    clock = Clock(torch)
    tqdm_mod.tqdm = clock

    work = Path(tempfile.mkdtemp(prefix=f"refdrive-{impl}-"))
    argv = argv_for(impl, str(work / "buffer"), iterations) + (DRY_RUN_ARGV if dry_run else [])
    (work / "buffer").mkdir()
    ns = types.SimpleNamespace(image_encoder="nfnet", text_encoder="bert", image_pretrained=False,
                               image_trainable=True, text_pretrained=True, text_trainable=False, distill=True,
                               only_has_image_projection=spec["projection_only"], loss_type="WBCE")
    write_buffers(torch, networks, ns, work / "buffer", spec["projection_only"])
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    old_argv, old_cwd = sys.argv, os.getcwd()
    sys.argv = argv
    os.chdir(work)  # anything the script writes lands in the temporary directory
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    gaps = [b - a for a, b in zip(clock.stamps, clock.stamps[1:])]
    timed = sorted(gaps[1:])  # the first iteration is the warm-up
    return {"s_per_iter": timed[len(timed) // 2] if timed else (gaps[0] if gaps else None),
            "s_per_iter_all": [round(t, 4) for t in gaps[1:]], "warmup_s": round(gaps[0], 4) if gaps else None,
            "timed_iters": len(timed), "peak_bytes": int(torch.cuda.max_memory_allocated()),
            "stubbed": stubbed, "argv": argv[1:], "command_source": spec["source"]}


def check(impl: str, ref: Path) -> list[str]:
    """Problems that would stop :func:`drive` before it starts, found without CUDA: a missing script or helper,
    or a flag of ``argv_for`` that the script's argument parser does not define."""
    spec = IMPLS[impl]
    script = ref / spec["script"]
    if not script.is_file():
        return [f"{script}: not found"]
    text = script.read_text(encoding="utf-8", errors="replace")
    problems = []
    for a in argv_for(impl, "BUF", 2)[1:]:
        if a.startswith("--"):
            flag = a.split("=", 1)[0]
            if f"'{flag}'" not in text and f'"{flag}"' not in text:
                problems.append(f"{script.name}: no argument {flag}")
    helpers = {"src/vl_distill_utils.py": ["def load_or_process_file"], "src/networks.py": ["def get_bert_stuff",
               "class CLIPModel_full"], "data/__init__.py": ["def get_dataset"]}
    for rel, needles in helpers.items():
        f = ref / rel
        src = f.read_text(encoding="utf-8", errors="replace") if f.is_file() else ""
        problems += [f"{rel}: {n!r} not found" for n in needles if n not in src]
    if "from tqdm import tqdm" not in text or "for it in tqdm(range(" not in text:
        problems.append(f"{script.name}: the iteration loop is not `for it in tqdm(range(...))` (the clock hooks tqdm)")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("impl", choices=sorted(IMPLS))
    ap.add_argument("--ref", required=True, help="directory holding a copy of the reference repository")
    ap.add_argument("--iters", type=int, default=4, help="iterations to run (the first is the warm-up)")
    ap.add_argument("--out", default="", help="JSON file; rows are appended to its 'rows' list")
    ap.add_argument("--check", action="store_true", help="only check the reference copy (no CUDA needed)")
    ap.add_argument("--cpu-dry-run", action="store_true", help="run the driver on the CPU at tiny shapes (tests)")
    args = ap.parse_args(argv)
    if args.check:
        problems = check(args.impl, Path(args.ref))
        for p in problems:
            print(f"[refdrive] {p}", file=sys.stderr)
        print(f"[refdrive] {args.impl}: {'ok' if not problems else f'{len(problems)} problem(s)'}", file=sys.stderr)
        return 1 if problems else 0
    if not args.out:
        ap.error("--out is required (except with --check)")
    out = Path(args.out)
    doc = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {"rows": []}
    row: dict[str, Any] = {"name": f"{args.impl}-reference", "family": "image-text", "impl": "reference",
                           "shapes": {"pairs": PAIRS, "image": list(IMAGE), "text_dim": TEXT_DIM, "image_arch": "nfnet_l0",
                                      "minibatch": 40 if args.impl == "lors" else 20, "syn_steps": 8, "rank": 20}}
    t0 = time.perf_counter()
    try:
        row.update(drive(args.impl, Path(args.ref), args.iters, dry_run=args.cpu_dry_run))
        if args.cpu_dry_run:
            row.update(name=f"{args.impl}-reference-dry-run", shapes={**row["shapes"], "pairs": DRY_RUN_PAIRS,
                                                                      "image": list(DRY_RUN_IMAGE)})
        row["status"] = "ok"
    except (Exception, SystemExit) as e:  # recorded, so the GPU run's other rows still come back (argparse exits)
        oom = type(e).__name__ == "OutOfMemoryError"
        row.update(status="oom" if oom else "error", error=f"{type(e).__name__}: {e}"[:500],
                   trace=traceback.format_exc(limit=6)[-2000:])
    row["wall_s"] = round(time.perf_counter() - t0, 2)
    doc["rows"].append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"[refdrive] {row['name']}: {row['status']} {row.get('s_per_iter', row.get('error', ''))}", file=sys.stderr)
    return 0 if row["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
