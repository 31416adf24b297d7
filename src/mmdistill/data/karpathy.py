"""Karpathy-split image–caption sets (Flickr30k / COCO as used by the LoRS / MTT-VL family) from local files.

The annotation format is Karpathy's JSON as used by MTT-VL (arXiv 2308.07545) and LoRS (arXiv 2406.03793).

* Params: ``ann_dir`` (a directory holding exactly one ``*_train.json`` and one ``*_test.json``, e.g.
  ``flickr30k_train.json``) or explicit ``train_file`` / ``test_file``, and ``image_root`` (image paths in
  the JSON are relative to it). All local; nothing is downloaded. ``name`` is informative (meta only).
* Train JSON: a list of ``{"image", "caption", "image_id"}``, one row per caption. Test JSON: a list of
  ``{"image", "caption": [str, ...]}``, one row per image. Either split also accepts the other form.
* Images de-duplicated by path (order of first appearance); centre-crop + resize to ``image_size`` and
  ImageNet standardisation exactly as :mod:`mmdistill.data.coco_mini`; captions embedded with MiniLM.
* Cache: processed images keyed by (annotation sha256, image_root, image size/mtime list, size).

:func:`coco_to_karpathy` converts a COCO caption-format file with ``split_origin`` (coco-mini-cc) into the
two JSONs (train2017 -> train, val2017 -> test); the tests use it as the fixture.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..io import atomic_write_text
from . import DATASETS
from ._common import (
    cache_file,
    check_params,
    check_split,
    check_text,
    embed_captions,
    file_fingerprint,
    load_cache,
    load_image,
    normalize_channels,
    positive_int,
    read_json,
    save_cache,
    to_chw_float,
)
from .coco_mini import IMAGENET_MEAN, IMAGENET_STD, SPLIT_ORIGIN, parse_coco_captions
from .paired import PairedDataset
from .root import require_file


def coco_to_karpathy(captions_json: Path, out_dir: Path, prefix: str = "coco-mini") -> dict[str, Path]:
    """Write ``<prefix>_train.json`` (one row per caption) and ``<prefix>_test.json`` (one row per image).

    Image paths are the COCO ``file_name`` (so ``image_root`` is the COCO images directory).
    """
    captions_json, out_dir = Path(captions_json), Path(out_dir)
    images, caps = parse_coco_captions(captions_json, "karpathy")
    out: dict[str, Path] = {}
    for split, origin in SPLIT_ORIGIN.items():
        chosen = sorted((im for im in images if im.get("split_origin") == origin and caps.get(im["id"])), key=lambda im: im["id"])
        if split == "train":
            rows: list[dict[str, Any]] = [
                {"image": im["file_name"], "caption": c, "image_id": im["id"]} for im in chosen for c in caps[im["id"]]
            ]
        else:
            rows = [{"image": im["file_name"], "caption": list(caps[im["id"]])} for im in chosen]
        out[split] = atomic_write_text(out_dir / f"{prefix}_{split}.json", json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
    return out


def parse_karpathy(path: Path, dataset: str) -> tuple[list[str], dict[str, list[str]]]:
    """(image paths in first-appearance order, captions per image path) from a Karpathy-format JSON."""
    data = read_json(path, dataset)
    if not isinstance(data, list):
        raise DataError(f"{path}: top level must be a list of {{'image', 'caption'}} rows, got {type(data).__name__}")
    caps: dict[str, list[str]] = {}
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {i} is not an object")
        img = row.get("image")
        if not isinstance(img, str) or not img:
            raise DataError(f"{path}: row {i}: field 'image' missing or not a string")
        c = row.get("caption")
        if isinstance(c, str):
            c = [c]
        if not isinstance(c, list) or not c or not all(isinstance(s, str) and s.strip() for s in c):
            raise DataError(f"{path}: row {i}: field 'caption' must be a non-empty string or list of strings")
        for s in [img, *c]:
            check_text(s, path, f"row {i}")
        caps.setdefault(img, []).extend(" ".join(s.split()) for s in c)
    if not caps:
        raise DataError(f"{path}: no rows")
    return list(caps), caps


@DATASETS.register("karpathy")
class Karpathy:
    """Flickr30k / COCO Karpathy-format retrieval sets from local JSON + images."""

    NAME = "karpathy"
    DEFAULTS: dict[str, Any] = {"ann_dir": None, "train_file": None, "test_file": None, "image_root": None, "image_size": 32, "name": "karpathy"}

    @classmethod
    def ann_file(cls, split: str, p: dict[str, Any]) -> Path:
        explicit = p[f"{split}_file"]
        if explicit:
            f = Path(explicit).expanduser()
            return require_file(f.parent, f.name, cls.NAME, f"Give an existing Karpathy-format {split} JSON as {split}_file.")
        if not p["ann_dir"]:
            raise ConfigError(
                f"dataset {cls.NAME!r}: give param 'ann_dir' (a directory with *_train.json and *_test.json) "
                f"or '{split}_file' (a Karpathy-format JSON); these sets are not downloadable offline"
            )
        d = Path(p["ann_dir"]).expanduser()
        if not d.is_dir():
            raise ConfigError(f"dataset {cls.NAME!r}: param 'ann_dir' {d} is not a directory")
        found = sorted(d.glob(f"*_{split}.json"))
        if len(found) != 1:
            names = ", ".join(f.name for f in found) or "none"
            raise ConfigError(f"dataset {cls.NAME!r}: need exactly one *_{split}.json in {d} (found {names}); or give '{split}_file'")
        return found[0]

    @classmethod
    def load(cls, split: str = "train", root: Path | str = ".", **params: Any) -> PairedDataset:
        check_split(cls.NAME, split)
        p = check_params(cls.NAME, params, cls.DEFAULTS)
        p["image_size"] = positive_int(cls.NAME, "image_size", p["image_size"])
        if not p["image_root"]:
            raise ConfigError(f"dataset {cls.NAME!r}: param 'image_root' (directory the JSON's image paths are relative to) is required")
        image_root = Path(p["image_root"]).expanduser()
        if not image_root.is_dir():
            raise ConfigError(f"dataset {cls.NAME!r}: param 'image_root' {image_root} is not a directory")
        t0 = time.perf_counter()
        ann = cls.ann_file(split, p)
        paths, caps = parse_karpathy(ann, cls.NAME)
        files = [require_file(image_root, rel, cls.NAME, f"Image listed in {ann}; check 'image_root'.") for rel in paths]

        stats = [(os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
        key = {"ann": file_fingerprint(ann), "image_root": str(image_root.resolve()), "paths": paths, "stats": stats, "size": p["image_size"]}
        path = cache_file(cls.NAME, f"images-{split}", key)
        hit = load_cache(path)
        if hit is not None and hit[0]["images"].shape[0] == len(files):
            u8 = hit[0]["images"]
        else:
            u8 = torch.from_numpy(np.stack([load_image(f, p["image_size"], cls.NAME) for f in files]))
            save_cache(path, {"images": u8}, {"ann": str(ann), "n": len(files)})
        x = normalize_channels(to_chw_float(u8), IMAGENET_MEAN, IMAGENET_STD)

        captions: list[str] = []
        t2i: list[int] = []
        for j, rel in enumerate(paths):
            captions += caps[rel]
            t2i += [j] * len(caps[rel])
        text = embed_captions(cls.NAME, split, captions)
        from ..nets.text_encoder import TEXT_ENCODER_NAME

        meta = {
            "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in p.items()},
            "name": p["name"],
            "ann_file": str(ann),
            "text_encoder": TEXT_ENCODER_NAME,
            "norm": {"image": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "stats_from": "fixed ImageNet stats, x/255"}},
            "files": paths,
            "load_seconds": round(time.perf_counter() - t0, 3),
        }
        return PairedDataset(
            name=cls.NAME, split=split, task="retrieval",
            tensors={"image": x, "text": text},
            text_to_image=torch.tensor(t2i, dtype=torch.long), captions=captions, meta=meta,
        )

    @classmethod
    def info(cls) -> dict[str, Any]:
        return {
            "description": "Karpathy-split image–caption retrieval (Flickr30k / COCO, LoRS / MTT-VL format) from local "
                           "annotation JSONs and images; one row per caption (train) / per image with 5 captions (test).",
            "task": "retrieval",
            "modalities": {"image": "(n_img,3,S,S) ImageNet-standardised", "text": "(n_txt,384) MiniLM, L2-normalised"},
            "source": "Karpathy splits (BLIP / LoRS annotation JSONs) + the Flickr30k or COCO images, supplied by the user",
            "licence": "per source: Flickr30k images are research-only (Flickr terms); COCO images per-image Flickr CC; captions CC BY 4.0 (COCO)",
            "obtain": "not available offline: pass ann_dir (or train_file/test_file) and image_root pointing at local copies; "
                      "mmdistill.data.karpathy.coco_to_karpathy() builds a tiny set from coco-mini-cc",
            "files": [],
            "params": dict(cls.DEFAULTS),
            "split_rule": {"train": "*_train.json", "test": "*_test.json"},
        }
