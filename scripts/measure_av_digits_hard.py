"""Measure unimodal and fusion accuracy on av-digits / av-digits-hard (offline-data.md §6 AV #1).

A tiny CNN (ConvNet-3 style, width 32, instance norm, pooled to 2x2, 1 thread) per modality, trained with Adam
(lr 1e-3, batch 64) on the full train split for EPOCHS epochs, evaluated on the test split. Fusion
concatenates the two towers' features. Usage:

    python scripts/measure_av_digits_hard.py [av-digits|av-digits-hard] [seed=N] [param=value ...]
"""

from __future__ import annotations

import json
import sys
import time

import torch
from torch import nn

from mmdistill.data import resolve_data_root
from mmdistill.data.av_digits import AVDigits, AVDigitsHard

EPOCHS = 8


def tower(in_hw: int, width: int = 32) -> tuple[nn.Module, int]:
    """ConvNet-3 style: [conv3x3 -> instance norm -> ReLU -> avgpool2] x 3, flattened.

    Inputs larger than 32 px (the 64x64 log-mel) are first average-pooled to 32x32 (cpu-calibration.md §5:
    32x32 log-mel is as accurate and 4x cheaper).
    """
    layers: list[nn.Module] = []
    while in_hw > 32:
        layers.append(nn.AvgPool2d(2))
        in_hw //= 2
    c = 1
    for _ in range(3):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.GroupNorm(width, width), nn.ReLU(), nn.AvgPool2d(2)]
        c, in_hw = width, in_hw // 2
    return nn.Sequential(*layers, nn.Flatten()), width * in_hw * in_hw


class Net(nn.Module):
    def __init__(self, shapes: dict[str, int]) -> None:
        super().__init__()
        self.mods = list(shapes)
        built = {m: tower(hw) for m, hw in shapes.items()}
        self.towers = nn.ModuleDict({m: t for m, (t, _) in built.items()})
        self.head = nn.Linear(sum(d for _, d in built.values()), 10)

    def forward(self, xs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.head(torch.cat([self.towers[m](xs[m]) for m in self.mods], 1))


def run(train, test, mods: list[str], seed: int = 0) -> float:
    torch.manual_seed(seed)
    net = Net({m: int(train.tensors[m].shape[-1]) for m in mods})
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    n = len(train)
    g = torch.Generator().manual_seed(seed)
    for _ in range(EPOCHS):
        net.train()
        for idx in torch.randperm(n, generator=g).split(64):
            loss = nn.functional.cross_entropy(net({m: train.tensors[m][idx] for m in mods}), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        pred = net({m: test.tensors[m] for m in mods}).argmax(1)
    return float((pred == test.labels).float().mean())


def main() -> None:
    torch.set_num_threads(1)
    name = sys.argv[1] if len(sys.argv) > 1 else "av-digits-hard"
    params: dict[str, float | int] = {}
    seed = 0
    for kv in sys.argv[2:]:
        if kv.startswith("seed="):
            seed = int(kv[5:])
            continue
        k, v = kv.split("=", 1)
        params[k] = float(v) if "." in v or "e" in v else int(v)
    cls = AVDigits if name == "av-digits" else AVDigitsHard
    root = resolve_data_root()
    train, test = cls.load("train", root, **params), cls.load("test", root, **params)
    out = {"dataset": name, "params": train.meta["params"], "epochs": EPOCHS, "seed": seed}
    for mods in (["audio"], ["visual"], ["audio", "visual"]):
        t = time.perf_counter()
        out["+".join(mods)] = round(100 * run(train, test, mods, seed), 1)
        out["+".join(mods) + "_s"] = round(time.perf_counter() - t, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
