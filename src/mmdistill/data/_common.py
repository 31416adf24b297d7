"""Helpers shared by the dataset loaders: params/split checks, the on-disk cache, image and JSON reading.

* Cache (DESIGN.md "feature cache keyed by (dataset, encoder, split)"): safetensors files under
  :func:`mmdistill.data.root.cache_dir` (outside the working directory), named by a sha256 of everything
  the content depends on (dataset, params, source-file sha256), written atomically with
  :mod:`mmdistill.io`. A corrupt cache file is ignored and rebuilt, never trusted.
* Errors (DESIGN.md "Conventions"): bad files raise :class:`DataError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from ..io import atomic_write_with, sha256_file
from .root import cache_dir

SPLITS = ("train", "test")
CACHE_VERSION = 1  # bump when a loader's processing changes so old cache entries are not reused

# ----------------------------------------------------------------------------- params and splits


def check_split(dataset: str, split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"dataset {dataset!r}: unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def check_params(dataset: str, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``defaults`` updated by ``params``; an unknown param raises ConfigError naming it."""
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ConfigError(
            f"dataset {dataset!r}: unknown param(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(defaults)) or '(none)'}"
        )
    out = dict(defaults)
    out.update(params)
    return out


def positive_int(dataset: str, name: str, value: Any) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"dataset {dataset!r}: param {name!r} must be an integer, got {value!r}") from None
    if v <= 0 or v != value:
        raise ConfigError(f"dataset {dataset!r}: param {name!r} must be a positive integer, got {value!r}")
    return v


# ----------------------------------------------------------------------------- hashing and cache

_FP_MEMO: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: Path) -> str:
    """sha256 of a source file, memoised per process by (path, size, mtime)."""
    st = os.stat(path)
    k = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if k not in _FP_MEMO:
        _FP_MEMO[k] = sha256_file(path)
    return _FP_MEMO[k]


def stable_hash(obj: Any) -> str:
    """sha256 of a JSON-serialisable object (keys sorted), used as a cache key."""
    blob = json.dumps(obj, sort_keys=True, default=str, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def cache_file(dataset: str, kind: str, key_obj: Any) -> Path:
    key = stable_hash({"v": CACHE_VERSION, "dataset": dataset, "kind": kind, "key": key_obj})
    return cache_dir() / dataset / f"{kind}-{key[:24]}.safetensors"


def load_cache(path: Path, keys: list[str] | None = None) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """Tensors (all, or only ``keys``) and the JSON meta of a cache file; None if absent or unreadable."""
    if not path.is_file():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "{}"))
            names = list(f.keys()) if keys is None else keys
            tensors = {k: f.get_tensor(k) for k in names}
        return tensors, meta
    except Exception:  # truncated/corrupt cache entry: rebuild it
        return None


def save_cache(path: Path, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> Path:
    from safetensors.torch import save_file

    data = {k: v.detach().contiguous() for k, v in tensors.items()}
    md = {"meta": json.dumps(meta, sort_keys=True, default=str)}
    return atomic_write_with(path, lambda p: save_file(data, p, metadata=md))


# ----------------------------------------------------------------------------- files


def read_json(path: Path, dataset: str) -> Any:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON for dataset {dataset!r} (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text for dataset {dataset!r} ({e})") from None


def check_text(s: str, path: Path, where: str) -> str:
    """``s`` if it is encodable Unicode; JSON escapes can smuggle in lone surrogates (``"\\ud800"``)."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        raise DataError(f"{path}: {where}: text is not valid Unicode ({e.reason} at position {e.start})") from None
    return s


def load_image(path: Path, size: int, dataset: str) -> np.ndarray:
    """Decode an image, centre-crop to a square and resize to ``size`` (``ImageOps.fit``, bicubic) as uint8 HWC RGB.

    A truncated or corrupt file raises DataError naming it (``LOAD_TRUNCATED_IMAGES`` stays False).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            rgb = im.convert("RGB")
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: corrupt or truncated image for dataset {dataset!r} ({e})") from None
    except Image.DecompressionBombError as e:  # declared size far beyond any real photo (not an OSError)
        raise DataError(f"{path}: image declares too many pixels for dataset {dataset!r} ({e})") from None
    out = ImageOps.fit(rgb, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    return np.asarray(out, dtype=np.uint8)


def to_chw_float(images_nhwc: np.ndarray | Tensor) -> Tensor:
    """uint8 (N,H,W,C) -> float32 (N,C,H,W) in [0, 1]."""
    t = torch.as_tensor(np.asarray(images_nhwc))
    return t.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def normalize_channels(x: Tensor, mean: list[float], std: list[float]) -> Tensor:
    m = torch.tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - m) / s


def channel_stats(x: Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of (N,C,H,W) (float64 accumulation)."""
    xd = x.double()
    return xd.mean(dim=(0, 2, 3)).tolist(), xd.std(dim=(0, 2, 3)).clamp_min(1e-8).tolist()


# ----------------------------------------------------------------------------- caption embeddings


def embed_captions(dataset: str, split: str, captions: list[str]) -> Tensor:
    """MiniLM embeddings of ``captions`` (n, 384), cached by (dataset, encoder, split, sha of the captions)."""
    from ..nets.text_encoder import TEXT_ENCODER_NAME

    cap_sha = hashlib.sha256("\n".join(captions).encode("utf-8")).hexdigest()
    path = cache_file(dataset, f"text-{split}", {"encoder": TEXT_ENCODER_NAME, "captions": cap_sha, "n": len(captions)})
    hit = load_cache(path)
    if hit is not None and hit[1].get("captions_sha") == cap_sha:
        return hit[0]["text"]
    from ..nets.text_encoder import encode_texts

    emb = encode_texts(captions)
    save_cache(path, {"text": emb}, {"encoder": TEXT_ENCODER_NAME, "captions_sha": cap_sha, "split": split})
    return emb
