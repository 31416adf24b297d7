"""AVDD-layout audio–visual tensors from local files (VGG_subset, Music_21, AVE, …).

The data layout of AVDD's prepared tensors (Kushwaha et al., TMLR 2024; ``sakshamsingh1/AVDD``).

* Params: ``path`` (directory, required), ``name`` (informative, e.g. ``"VGG_subset"``, ``"Music_21"``,
  ``"AVE"``), ``audio_norm`` (``"raw_db"``: leave the dB values as AVDD does, default; ``"standardize"``:
  global mean/std of the *train* file), ``num_classes`` (default: max label + 1 of the loaded split).
* Files: ``<path>/<split>.safetensors`` (preferred) or ``<path>/<split>.pt`` (``torch.load(weights_only=True)``,
  a dict), each holding ``audio`` float (N,1,F,T) raw dB (a 3-D (N,F,T) tensor gets the channel axis added),
  ``frame`` (N,3,H,W) in 0–255, ``label`` int (N,).
* Frames -> x/255 -> standardised with mean (0.425, 0.396, 0.370), std (0.229, 0.224, 0.221) (AVDD's values).
* Tensors in the PairedDataset: ``audio`` and ``visual``. Mismatched counts raise DataError naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, DataError, DataMissingError
from . import DATASETS
from ._common import check_params, check_split, normalize_channels
from .paired import PairedDataset

FRAME_MEAN = [0.425, 0.396, 0.370]
FRAME_STD = [0.229, 0.224, 0.221]
AUDIO_NORMS = ("raw_db", "standardize")
MAX_CLASSES = 100_000


def split_file(directory: Path, split: str, dataset: str) -> Path:
    for ext in ("safetensors", "pt"):
        f = directory / f"{split}.{ext}"
        if f.is_file():
            return f
    raise DataMissingError(
        f"{directory / (split + '.safetensors')} (or {split}.pt): missing file for dataset {dataset!r}. "
        "Export the AVDD tensors (audio, frame, label) for this split into that directory; "
        "these sets are not downloadable offline."
    )


def read_split(path: Path, dataset: str) -> dict[str, Tensor]:
    """``audio`` float32 (N,1,F,T), ``frame`` float32 (N,3,H,W) 0–255, ``label`` int64 (N,), validated."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path))
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors / pickle errors have no common base class
        raise DataError(f"{path}: unreadable tensor file for dataset {dataset!r} ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict with 'audio', 'frame', 'label', got {type(data).__name__}")
    out: dict[str, Tensor] = {}
    for k in ("audio", "frame", "label"):
        v = data.get(k)
        if not isinstance(v, Tensor):
            raise DataError(f"{path}: field {k!r} missing or not a tensor (fields: {sorted(map(str, data))})")
        out[k] = v
    a, f, y = out["audio"], out["frame"], out["label"]
    if a.dim() == 3:
        a = a.unsqueeze(1)
    if a.dim() != 4:
        raise DataError(f"{path}: field 'audio' must be (N,1,F,T), got shape {tuple(out['audio'].shape)}")
    if f.dim() != 4 or f.shape[1] not in (1, 3):
        raise DataError(f"{path}: field 'frame' must be (N,3,H,W), got shape {tuple(f.shape)}")
    if y.dim() != 1 or y.is_floating_point() or y.is_complex():
        raise DataError(f"{path}: field 'label' must be a 1-D integer tensor, got {y.dtype} {tuple(y.shape)}")
    counts = {"audio": a.shape[0], "frame": f.shape[0], "label": y.shape[0]}
    if len(set(counts.values())) != 1:
        raise DataError(f"{path}: mismatched counts {counts}; audio, frame and label need one row per sample")
    y = y.to(torch.int64)
    if y.numel() and int(y.min()) < 0:
        raise DataError(f"{path}: field 'label' has negative values")
    if y.numel() and int(y.max()) >= MAX_CLASSES:  # a corrupt label would otherwise size the class list
        raise DataError(f"{path}: field 'label' has value {int(y.max())}; labels must be class indices below {MAX_CLASSES}")
    a, f = a.float(), f.float()
    for k, t in (("audio", a), ("frame", f)):
        if not torch.isfinite(t).all():
            raise DataError(f"{path}: field {k!r} contains NaN or inf")
    return {"audio": a, "frame": f, "label": y.long()}


@DATASETS.register("av-prepared")
class AVPrepared:
    """Prepared AVDD tensors (audio spectrogram + one video frame + label) from ``path``."""

    NAME = "av-prepared"
    DEFAULTS: dict[str, Any] = {"path": None, "name": "AVDD", "audio_norm": "raw_db", "num_classes": None}

    @classmethod
    def load(cls, split: str = "train", root: Path | str = ".", **params: Any) -> PairedDataset:
        check_split(cls.NAME, split)
        p = check_params(cls.NAME, params, cls.DEFAULTS)
        if not p["path"]:
            raise ConfigError(f"dataset {cls.NAME!r}: param 'path' (directory with train/test .safetensors or .pt) is required")
        if p["audio_norm"] not in AUDIO_NORMS:
            raise ConfigError(f"dataset {cls.NAME!r}: param 'audio_norm' must be one of {AUDIO_NORMS}, got {p['audio_norm']!r}")
        d = Path(p["path"]).expanduser()
        if not d.is_dir():
            raise ConfigError(f"dataset {cls.NAME!r}: param 'path' {d} is not a directory")
        f = split_file(d, split, cls.NAME)
        data = read_split(f, cls.NAME)

        norm: dict[str, Any] = {"visual": {"mean": FRAME_MEAN, "std": FRAME_STD, "formula": "(x/255 - mean) / std"}}
        audio = data["audio"]
        if p["audio_norm"] == "standardize":
            ftr = f if split == "train" else split_file(d, "train", cls.NAME)
            tr = data["audio"] if split == "train" else read_split(ftr, cls.NAME)["audio"]
            mean, std = float(tr.double().mean()), float(tr.double().std().clamp_min(1e-8))
            audio = (audio - mean) / std
            norm["audio"] = {"mean": mean, "std": std, "stats_from": f"train split ({ftr.name}), global"}
        else:
            norm["audio"] = {"mode": "raw_db", "note": "AVDD-faithful: no audio normalisation"}
        frame = data["frame"]
        mean_c, std_c = (FRAME_MEAN, FRAME_STD) if frame.shape[1] == 3 else ([sum(FRAME_MEAN) / 3], [sum(FRAME_STD) / 3])
        visual = normalize_channels(frame / 255.0, mean_c, std_c)

        labels = data["label"]
        n_cls = p["num_classes"]
        if n_cls is None:
            n_cls = int(labels.max()) + 1 if labels.numel() else 0
        elif int(n_cls) <= (int(labels.max()) if labels.numel() else -1):
            raise ConfigError(f"dataset {cls.NAME!r}: num_classes={n_cls} but {f} has label {int(labels.max())}")
        return PairedDataset(
            name=cls.NAME, split=split, task="classification",
            tensors={"audio": audio, "visual": visual}, labels=labels,
            class_names=[str(i) for i in range(int(n_cls))],
            meta={"params": {**p, "path": str(d)}, "name": p["name"], "file": str(f), "norm": norm},
        )

    @classmethod
    def info(cls) -> dict[str, Any]:
        return {
            "description": "AVDD-layout prepared audio–visual tensors (e.g. VGG_subset, Music_21, AVE): one log-spectrogram "
                           "(raw dB) and one RGB frame per sample, from local train/test .safetensors or .pt files.",
            "task": "classification",
            "modalities": {"audio": "(N,1,F,T) raw dB or standardised", "visual": "(N,3,H,W) x/255 standardised (AVDD mean/std)"},
            "source": "user-supplied export of the AVDD datasets (VGGSound subset, MUSIC-21, AVE)",
            "licence": "per source dataset (not redistributed here)",
            "obtain": "not available offline: export audio/frame/label tensors to <path>/train.safetensors and <path>/test.safetensors "
                      "(or .pt) and pass path=...",
            "files": [],
            "params": dict(cls.DEFAULTS),
            "split_rule": {"train": "<path>/train.*", "test": "<path>/test.*"},
        }
