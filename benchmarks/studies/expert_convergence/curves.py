"""Expert convergence on emoji: per-epoch train/val InfoNCE and val retrieval of one expert trajectory.

Question: the vl suite's experts (``configs/vl/*_emoji.yaml``: 3 epochs of 7 SGD steps at batch 1024, lr 0.1,
over the shared pretrained image encoder) end at a training InfoNCE of 6.27 against ln(1024) = 6.93 at
chance. How many epochs, at which step size and batch, until the expert's *validation* loss is well below
chance and flat?

Protocol: the emoji loader's ``val_fraction = 0.2`` holds out a stratified share of the train concepts as
``val``; the pretrained image encoder and the expert are trained on train-minus-val with the package's own
``train_experts`` (the buffer stores every epoch's flat parameters), then every stored epoch is loaded back and
scored: InfoNCE on train-minus-val and on val (fixed batches of ``--eval-batch`` pairs, no augmentation, so
chance is ln(eval batch)), and val retrieval (``retrieval_recalls``: IR/TR@1/5/10 and their mean, ``r_mean``).
The test split is not read. One expert (expert 0, seed 0) per variant, ``OMP_NUM_THREADS=1``.

Run from the repository root::

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/studies/expert_convergence/curves.py \\
        --variant shipped --epochs 40
    PYTHONPATH=src python benchmarks/studies/expert_convergence/curves.py --summarise

The papers' buffers: 20 experts × 10 epochs (MTT-VL arXiv 2308.07545, LoRS arXiv 2406.01719), SGD lr 0.1 at
batch 128 over an ImageNet-pretrained NFNet and BERT features.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
REPO = HERE.parents[2]
DATA: dict[str, Any] = {"image_size": 32, "val_fraction": 0.2}

# name -> overrides of the shipped experts block (configs/vl/mtt-vl_emoji.yaml)
VARIANTS: dict[str, dict[str, Any]] = {
    "shipped": {},                                   # batch 1024, lr 0.1 (7 steps per epoch)
    "lr1": {"lr": 1.0},                              # batch 1024, lr 1.0 (lr 0.1 at batch 128, scaled linearly)
    "bs128": {"batch_size": 128},                    # the papers' batch and lr: 53 steps per epoch
    "bs128-lr0.3": {"batch_size": 128, "lr": 0.3},
}


def shipped_experts() -> dict[str, Any]:
    from mmdistill.config import load_yaml

    ex = dict(load_yaml(REPO / "configs" / "vl" / "mtt-vl_emoji.yaml")["params"]["experts"])
    ex.update(num_experts=1)
    return ex


def _losses(flat, theta, images, texts, t2i, bs: int) -> float:
    """Mean InfoNCE over fixed consecutive batches of ``bs`` pairs (the tail batch dropped)."""
    import torch

    from mmdistill.losses.contrastive import info_nce

    vals = []
    with torch.no_grad():
        for s in range(0, texts.shape[0] - bs + 1, bs):
            idx = torch.arange(s, s + bs)
            vals.append(float(info_nce(flat.logits(theta, images[t2i[idx]], texts[idx]))))
    return sum(vals) / len(vals)


def run_variant(name: str, epochs: int, eval_batch: int, data_root: str | None = None) -> dict[str, Any]:
    import torch

    from mmdistill.config import from_dict
    from mmdistill.data import load_dataset
    from mmdistill.evaluate.retrieval import test_model
    from mmdistill.experts.buffers import ExpertConfig, train_experts
    from mmdistill.experts.model import FlatDualEncoder, build_model

    torch.set_num_threads(1)
    train = load_dataset("emoji", "train", data_root, **DATA)
    val = load_dataset("emoji", "val", data_root, **DATA)
    ex = {**shipped_experts(), **VARIANTS[name], "epochs": epochs}
    cfg = from_dict(ExpertConfig, ex, where=f"expert study {name}")
    c0, w0 = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mmdistill-expert-study-") as tmp:
        buf = train_experts(train, cfg, Path(tmp) / "buf", progress=False)
        train_cpu, train_wall = time.process_time() - c0, time.perf_counter() - w0
        model = build_model(cfg.net, tuple(train.tensors["image"].shape[1:]), int(train.tensors["text"].shape[1]))
        from safetensors.torch import load_file

        if buf.encoder_path is not None:
            model.image_encoder.load_state_dict(load_file(str(buf.encoder_path)))
        flat = FlatDualEncoder(model, cfg.mode, cfg.net.temperature)
        curve = []
        for e in range(epochs + 1):
            theta = buf.load(0, e)
            flat.load(theta)
            rec = test_model(model, val.tensors["image"], val.tensors["text"], val.text_to_image, "cpu")
            curve.append({
                "epoch": e, "steps": e * math.ceil((len(train) - 1) / cfg.batch_size),
                "train_infonce": _losses(flat, theta, train.tensors["image"], train.tensors["text"], train.text_to_image, eval_batch),
                "val_infonce": _losses(flat, theta, val.tensors["image"], val.tensors["text"], val.text_to_image, eval_batch),
                "val_r_mean": rec["r_mean"], "val_ir@1": rec["ir@1"], "val_tr@1": rec["tr@1"]})
            print(f"{name} epoch {e}: " + ", ".join(f"{k} {v:.3f}" for k, v in curve[-1].items() if k != "epoch"),
                  flush=True)
    n_img, n_txt = flat.sizes
    enc = sum(p.numel() for p in model.image_encoder.parameters())
    return {"variant": name, "experts": ex, "epochs": epochs, "eval_batch": eval_batch,
            "chance_infonce": math.log(eval_batch), "n_train": len(train), "n_val": len(val),
            "train_cpu_s": round(train_cpu, 1), "train_wall_s": round(train_wall, 1),
            "params": {"image_encoder": enc, "image_branch_in_theta": n_img, "text_head": n_txt,
                       "image_head_share_of_image_branch": round(1 - enc / n_img, 4) if cfg.mode == "full" else None},
            "curve": curve, "split": "val (held-out train concepts); test not read"}


def save(row: dict[str, Any]) -> None:
    from mmdistill.io import atomic_write_json

    rows = json.loads(RESULTS.read_text(encoding="utf-8")) if RESULTS.is_file() else []
    rows = [r for r in rows if r["variant"] != row["variant"]] + [row]
    atomic_write_json(RESULTS, rows)


def plateau(curve: list[dict[str, Any]], key: str, tol: float, lower_better: bool) -> int:
    """First epoch within ``tol`` of the curve's best value of ``key``."""
    vals = [c[key] for c in curve]
    best = min(vals) if lower_better else max(vals)
    return next(c["epoch"] for c in curve if abs(c[key] - best) <= tol)


def summarise() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads(RESULTS.read_text(encoding="utf-8"))
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    print("| variant | epochs | chance | train InfoNCE at 3 / last | val InfoNCE at 3 / best (epoch) / last "
          "| val r_mean at 3 / best (epoch) / last | val loss plateau (±0.1) | CPU s per epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for i, r in enumerate(rows):
        c = r["curve"]
        ep = [p["epoch"] for p in c]
        ax[0].plot(ep, [p["val_infonce"] for p in c], color=f"C{i}", label=f"{r['variant']} val")
        ax[0].plot(ep, [p["train_infonce"] for p in c], ls=":", color=f"C{i}", label=f"{r['variant']} train")
        ax[1].plot(ep, [p["val_r_mean"] for p in c], color=f"C{i}", label=r["variant"])
        bl = min(c, key=lambda p: p["val_infonce"])
        br = max(c, key=lambda p: p["val_r_mean"])
        e3 = c[min(3, len(c) - 1)]
        print(f"| {r['variant']} ({r['experts']['batch_size']}, lr {r['experts']['lr']:g}) | {r['epochs']} "
              f"| {r['chance_infonce']:.2f} | {e3['train_infonce']:.2f} / {c[-1]['train_infonce']:.2f} "
              f"| {e3['val_infonce']:.2f} / {bl['val_infonce']:.2f} ({bl['epoch']}) / {c[-1]['val_infonce']:.2f} "
              f"| {e3['val_r_mean']:.1f} / {br['val_r_mean']:.1f} ({br['epoch']}) / {c[-1]['val_r_mean']:.1f} "
              f"| {plateau(c, 'val_infonce', 0.1, True)} | {r['train_cpu_s'] / r['epochs']:.1f} |")
    ax[0].axhline(rows[0]["chance_infonce"], color="grey", lw=0.8)
    ax[0].set(xlabel="expert epoch", ylabel="InfoNCE (eval batch)", title="expert loss (grey: chance)")
    ax[1].set(xlabel="expert epoch", ylabel="val r_mean", title="expert val retrieval")
    ax[0].legend(fontsize=7)
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "curves.png", dpi=110)


def head_share(shapes: tuple[tuple[int, int], ...] = ((32, 3), (64, 3), (128, 3), (64, 4), (128, 4))) -> None:
    """Parameter split of the image branch (ConvNet encoder + linear projection) at 32 px for several shapes."""
    import torch

    from mmdistill.experts.model import VLNetConfig, build_model

    print("| image ConvNet (width, depth) | encoder params | projection params | projection share of the image branch |")
    print("|---|---|---|---|")
    for w, d in shapes:
        net = VLNetConfig(width=w, depth=d)
        m = build_model(net, (3, 32, 32), 384)
        enc = sum(p.numel() for p in m.image_encoder.parameters())
        head = sum(p.numel() for p in m.image_head.parameters())
        print(f"| {w}, {d} | {enc:,} | {head:,} | {100 * head / (enc + head):.0f} % |")
    del torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=sorted(VARIANTS), action="append")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--eval-batch", type=int, default=1024)
    ap.add_argument("--summarise", action="store_true")
    a = ap.parse_args()
    if a.summarise:
        summarise()
        head_share()
        return
    for v in a.variant or ["shipped"]:
        save(run_variant(v, a.epochs, a.eval_batch))


if __name__ == "__main__":
    main()
