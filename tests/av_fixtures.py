"""Tiny in-memory audio-visual datasets for the issue-4 tests (no data files needed).

``tiny_av()`` builds a learnable PairedDataset: per class a fixed smooth template per modality plus
heavy per-sample noise, so one random real pair is a poor class summary while a class mean is a good one.
``register_tiny()`` registers it as dataset ``tiny-av`` (params: ``per_class``, ``noise``, ``mismatch``)
so the CLI can load it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmdistill.data import DATASETS
from mmdistill.data.paired import PairedDataset

AUDIO = (1, 16, 16)
VISUAL = (1, 16, 16)
NET = {"width": 8, "audio_depth": 2, "visual_depth": 2, "audio_final_pool": [2, 2], "visual_final_pool": [2, 2],
       "audio_first_pad": "auto"}


def _templates(classes: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(classes, *shape, generator=g)
    return F.avg_pool2d(t, 3, 1, 1) * 3.0


def tiny_av(split: str = "train", classes: int = 4, per_class: int = 24, noise: float = 1.5, mismatch: bool = False,
            name: str = "tiny-av") -> PairedDataset:
    g = torch.Generator().manual_seed(1 if split == "train" else 2)
    lab = torch.arange(classes).repeat_interleave(per_class)
    ta, tv = _templates(classes, AUDIO, 10), _templates(classes, VISUAL, 20)
    a = ta[lab] + noise * torch.randn(lab.numel(), *AUDIO, generator=g)
    v = tv[lab] + noise * torch.randn(lab.numel(), *VISUAL, generator=g)
    if mismatch:
        a = a[:-1]
    return PairedDataset(name=name, split=split, task="classification", tensors={"audio": a, "visual": v}, labels=lab,
                         class_names=[str(c) for c in range(classes)],
                         meta={"params": {"per_class": per_class, "noise": noise, "mismatch": mismatch}})


class TinyAV:
    @staticmethod
    def load(split: str, root, per_class: int = 24, noise: float = 1.5, mismatch: bool = False, **_: object) -> PairedDataset:
        return tiny_av(split, per_class=per_class if split == "train" else 10, noise=noise, mismatch=mismatch)

    @staticmethod
    def info() -> dict:
        return {"name": "tiny-av", "source": "tests/av_fixtures.py"}


def register_tiny() -> None:
    if "tiny-av" not in DATASETS:
        DATASETS.register("tiny-av")(TinyAV)


def write_av_prepared(directory, classes: int = 2, per_class: int = 3, audio: tuple[int, ...] = (1, 128, 56),
                      frame: tuple[int, ...] = (3, 224, 224), mismatch: bool = False, seed: int = 0) -> str:
    """Tiny AVDD-layout fixture for the ``av-prepared`` loader: ``train``/``test`` .safetensors with raw-dB audio,
    0-255 frames and int64 labels (``mismatch=True``: one audio row fewer than frames in train)."""
    from pathlib import Path

    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for split, n in (("train", per_class), ("test", 2)):
        lab = torch.arange(classes).repeat_interleave(n)
        a = -60 + 20 * torch.randn(lab.numel(), *audio, generator=g)
        f = (torch.rand(lab.numel(), *frame, generator=g) * 255).round()
        if mismatch and split == "train":
            a = a[:-1]
        save_file({"audio": a.contiguous(), "frame": f.contiguous(), "label": lab.contiguous()}, str(d / f"{split}.safetensors"))
    return str(d)
