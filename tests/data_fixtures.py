"""Tiny on-disk fixtures for the dataset-loader tests (test_data_*.py): no shared data needed.

* ``make_av_root(tmp)``: a data root with ``fsdd/fsdd-recordings.tar.gz`` (sine-tone WAVs named like FSDD)
  and ``mnist5k/mnist_5k.csv.gz`` (random 28x28 digits, 10 per class).
* ``write_av_prepared(dir, ...)``: AVDD-layout ``train``/``test`` tensor files.
* ``SHARED`` / ``need_shared(*rel)``: the real ../shared/data root, skipping when it is absent.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mmdistill.data.root import resolve_data_root

SHARED = resolve_data_root()


def need_shared(*rel: str) -> Path:
    """The real data root, or skip when any of ``rel`` is absent there."""
    for r in rel:
        if not (SHARED / r).exists():
            pytest.skip(f"shared data not available: {SHARED / r}")
    return SHARED


def wav_bytes(freq: float, n: int = 3000, sr: int = 8000) -> bytes:
    t = np.arange(n) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def make_av_root(
    tmp: Path,
    digits: tuple[int, ...] = tuple(range(10)),
    speakers: tuple[str, ...] = ("alice", "bob"),
    takes: int = 7,
    per_class: int = 10,
    corrupt: str | None = None,
) -> Path:
    """Data root with a fake FSDD archive (``corrupt``: member name to overwrite with garbage) and MNIST CSV."""
    root = tmp / "data"
    (root / "fsdd").mkdir(parents=True)
    (root / "mnist5k").mkdir(parents=True)
    with tarfile.open(root / "fsdd" / "fsdd-recordings.tar.gz", "w:gz") as tf:
        for d in digits:
            for si, s in enumerate(speakers):
                for k in range(takes):
                    name = f"recordings/{d}_{s}_{k}.wav"
                    data = b"RIFF\x00\x00junk-not-a-wav" if name == corrupt else wav_bytes(200 + 90 * d + 7 * si + k, 2000 + 300 * k)
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    rng = np.random.default_rng(0)
    rows = []
    for c in range(10):
        for _ in range(per_class):
            rows.append(np.concatenate([rng.integers(0, 256, 784), [c]]))
    arr = np.stack(rows)
    with gzip.open(root / "mnist5k" / "mnist_5k.csv.gz", "wt") as fh:
        np.savetxt(fh, arr, fmt="%d", delimiter=",")
    return root


def av_prepared_tensors(n: int, seed: int, classes: int = 3, mismatch: str | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    d = {
        "audio": torch.randn(n, 1, 8, 6, generator=g) * 10 - 40,
        "frame": torch.rand(n, 3, 8, 8, generator=g) * 255,
        "label": torch.arange(n) % classes,
    }
    if mismatch:
        d[mismatch] = d[mismatch][:-1]
    return d


def write_av_prepared(directory: Path, fmt: str = "safetensors", mismatch: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", 12, 0), ("test", 6, 1)):
        d = av_prepared_tensors(n, seed, mismatch=mismatch if split == "train" else None)
        if fmt == "safetensors":
            from safetensors.torch import save_file

            save_file(d, str(directory / f"{split}.safetensors"))
        else:
            torch.save(d, directory / f"{split}.pt")
    return directory
