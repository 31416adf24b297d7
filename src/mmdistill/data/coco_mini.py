"""COCO-mini-CC: 51 CC BY / BY-SA COCO photos x 5 captions (retrieval smoke test).

Data and licence: ``../shared/data/coco-mini-cc/SOURCE.md``.

* ``coco-mini-cc/captions.json`` (COCO caption format: ``images``, ``annotations``) + ``images/<file_name>``.
* Split by each image's ``split_origin``: ``train2017`` -> train (26 images), ``val2017`` -> test (25).
* Images: centre-cropped to a square and resized to ``image_size`` (``PIL.ImageOps.fit``, bicubic), x/255,
  standardised per channel with the fixed ImageNet mean/std (``meta["norm"]``; fixed stats keep the test
  split independent of the train images, as for real Karpathy-format sets).
* Captions: every annotation of the image (5 here), in annotation-id order, embedded with frozen MiniLM.
* Cache: processed images keyed by (captions.json sha256, image sha256s, size); caption embeddings keyed by
  (dataset, encoder, split, captions sha256).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
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
from .paired import PairedDataset
from .root import require_file

CAPTIONS_FILE = "coco-mini-cc/captions.json"
IMAGE_DIR = "coco-mini-cc/images"
SPLIT_ORIGIN = {"train": "train2017", "test": "val2017"}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
HOW = "Copy ../shared/data/coco-mini-cc/ (51 CC BY / BY-SA photos from github.com/Obmutescence/COCO-MINI; see its SOURCE.md)."


def parse_coco_captions(path: Path, dataset: str) -> tuple[list[dict[str, Any]], dict[int, list[str]]]:
    """(images, captions by image id) from a COCO caption-format JSON, validating the fields used."""
    data = read_json(path, dataset)
    if not isinstance(data, dict):
        raise DataError(f"{path}: top level must be an object with 'images' and 'annotations'")
    for field in ("images", "annotations"):
        if not isinstance(data.get(field), list):
            raise DataError(f"{path}: field {field!r} missing or not a list")
    images = []
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict):
            raise DataError(f"{path}: images[{i}] is not an object")
        for f, typ in (("id", int), ("file_name", str)):
            if not isinstance(im.get(f), typ):
                raise DataError(f"{path}: images[{i}].{f} missing or not {typ.__name__}")
        images.append(im)
    for i, a in enumerate(data["annotations"]):  # validate before sorting by id (mixed id types cannot be ordered)
        if not isinstance(a, dict) or not isinstance(a.get("image_id"), int) or not isinstance(a.get("caption"), str) \
                or not isinstance(a.get("id", 0), int):
            raise DataError(f"{path}: annotations[{i}] needs int 'image_id', int 'id' and str 'caption'")
        check_text(a["caption"], path, f"annotations[{i}].caption")
    anns = sorted(data["annotations"], key=lambda a: a.get("id", 0))
    caps: dict[int, list[str]] = {}
    for a in anns:
        caps.setdefault(a["image_id"], []).append(" ".join(a["caption"].split()))
    return images, caps


@DATASETS.register("coco-mini")
class CocoMini:
    """COCO-mini-CC image–caption retrieval."""

    NAME = "coco-mini"
    DEFAULTS: dict[str, Any] = {"image_size": 32}

    @classmethod
    def load(cls, split: str = "train", root: Path | str = ".", **params: Any) -> PairedDataset:
        check_split(cls.NAME, split)
        p = check_params(cls.NAME, params, cls.DEFAULTS)
        p["image_size"] = positive_int(cls.NAME, "image_size", p["image_size"])
        t0 = time.perf_counter()
        root = Path(root)
        cap_path = require_file(root, CAPTIONS_FILE, cls.NAME, HOW)
        images, caps = parse_coco_captions(cap_path, cls.NAME)
        for i, im in enumerate(images):
            if im.get("split_origin") not in SPLIT_ORIGIN.values():
                raise DataError(f"{cap_path}: images[{i}].split_origin must be train2017 or val2017, got {im.get('split_origin')!r}")
        chosen = sorted((im for im in images if im["split_origin"] == SPLIT_ORIGIN[split]), key=lambda im: im["id"])
        dropped = [im["file_name"] for im in chosen if not caps.get(im["id"])]
        chosen = [im for im in chosen if caps.get(im["id"])]
        if not chosen:
            raise DataError(f"{cap_path}: no captioned {SPLIT_ORIGIN[split]} images for split {split!r}")
        files = [require_file(root, f"{IMAGE_DIR}/{im['file_name']}", cls.NAME, HOW) for im in chosen]

        key = {"captions": file_fingerprint(cap_path), "images": [file_fingerprint(f) for f in files], "size": p["image_size"]}
        path = cache_file(cls.NAME, f"images-{split}", key)
        hit = load_cache(path)
        if hit is not None:
            u8 = hit[0]["images"]
        else:
            u8 = torch.from_numpy(np.stack([load_image(f, p["image_size"], cls.NAME) for f in files]))
            save_cache(path, {"images": u8}, {"files": [f.name for f in files]})
        x = normalize_channels(to_chw_float(u8), IMAGENET_MEAN, IMAGENET_STD)

        captions: list[str] = []
        t2i: list[int] = []
        for j, im in enumerate(chosen):
            captions += caps[im["id"]]
            t2i += [j] * len(caps[im["id"]])
        text = embed_captions(cls.NAME, split, captions)
        from ..nets.text_encoder import TEXT_ENCODER_NAME

        meta = {
            "params": p,
            "text_encoder": TEXT_ENCODER_NAME,
            "norm": {"image": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD, "stats_from": "fixed ImageNet stats, x/255"}},
            "files": [im["file_name"] for im in chosen],
            "image_ids": [im["id"] for im in chosen],
            "licence_ids": [im.get("license") for im in chosen],
            "flickr_urls": [im.get("flickr_url") for im in chosen],
            "dropped_uncaptioned": dropped,
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
            "description": "COCO-mini-CC: 51 real COCO 2017 photos (26 train2017 -> train, 25 val2017 -> test) x 5 human captions; "
                           "a smoke test for the Flickr/COCO retrieval path, too small to rank methods.",
            "task": "retrieval",
            "modalities": {"image": "(n_img,3,S,S) ImageNet-standardised", "text": "(n_txt,384) MiniLM, L2-normalised"},
            "source": "github.com/Obmutescence/COCO-MINI commit 644f29e (COCO 2017), CC BY / BY-SA images only",
            "licence": "per-image CC BY 2.0 / CC BY-SA 2.0 (attribution via flickr_url); captions CC BY 4.0",
            "obtain": f"{CAPTIONS_FILE} and {IMAGE_DIR}/*.jpg under the data root (../shared/data)",
            "files": [CAPTIONS_FILE, IMAGE_DIR + "/"],
            "params": dict(cls.DEFAULTS),
            "split_rule": {"train": "split_origin == train2017", "test": "split_origin == val2017"},
        }
