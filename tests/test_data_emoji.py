"""emoji loader (data/emoji.py; offline-data.md §6 Image–text #1) and the MiniLM text encoder."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
import torch
from data_fixtures import need_shared

from mmdistill.data import load_dataset
from mmdistill.data.emoji import TSV_FILE, captions_for, read_tsv, split_concepts
from mmdistill.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def emoji_sets() -> dict[str, object]:
    root = need_shared(TSV_FILE)
    return {s: load_dataset("emoji", s, data_root=str(root)) for s in ("train", "test")}


def test_text_encoder_matches_minilm_properties() -> None:
    from mmdistill.nets.text_encoder import EMBED_DIM, TEXT_ENCODER_NAME, encode_texts

    e = encode_texts(["a dog", "a puppy", "a spreadsheet"])
    assert TEXT_ENCODER_NAME == "all-MiniLM-L6-v2" and e.shape == (3, EMBED_DIM) == (3, 384)
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert float(e[0] @ e[1]) > float(e[0] @ e[2])  # semantic
    assert torch.allclose(encode_texts(["a puppy"]), e[1:2], atol=1e-5)  # batch-independent
    assert encode_texts([]).shape == (0, 384)


def test_shapes_counts_and_split(emoji_sets) -> None:
    tr, te = emoji_sets["train"], emoji_sets["test"]
    n_tr, n_te = tr.tensors["image"].shape[0], te.tensors["image"].shape[0]
    assert n_tr + n_te == 1870 and abs(n_te - 0.2 * 1870) <= 9  # per-group rounding
    assert tr.tensors["image"].shape[1:] == (3, 32, 32) and tr.tensors["text"].shape[1] == 384
    assert not set(tr.meta["emoji"]) & set(te.meta["emoji"])  # held-out concepts
    for ds in (tr, te):
        assert len(ds.captions) == ds.tensors["text"].shape[0] == ds.text_to_image.shape[0]
        assert torch.bincount(ds.text_to_image).min() >= 1  # every image has a caption
        assert len(ds.class_names) == 9 and ds.labels.shape[0] == ds.tensors["image"].shape[0]
        assert ds.extra_labels["subgroup"].shape == ds.labels.shape
        assert "emoji_en.tsv" in ds.meta["caption_source"]
        assert ds.meta["render"]["blank_glyphs"] == 0
    # stratified: each group's test share is round(0.2 * size)
    n_all = collections.Counter(tr.labels.tolist()) + collections.Counter(te.labels.tolist())
    n_test = collections.Counter(te.labels.tolist())
    assert all(n_test[g] == round(0.2 * n) for g, n in n_all.items())
    x = tr.tensors["image"].double()
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=x.dtype), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3, dtype=x.dtype), atol=1e-3)


def test_captions_and_cached_embeddings(emoji_sets) -> None:
    from mmdistill.nets.text_encoder import encode_texts

    ds = emoji_sets["train"] if "grinning face" in emoji_sets["train"].meta["names"] else emoji_sets["test"]
    j = ds.meta["names"].index("grinning face")
    caps = [c for c, i in zip(ds.captions, ds.text_to_image.tolist()) if i == j]
    assert caps == ["grinning face", "grinning face: face, grin", "face", "grin"]
    rows = torch.nonzero(ds.text_to_image == j).flatten()
    assert torch.allclose(ds.tensors["text"][rows], encode_texts(caps), atol=1e-5)


def test_caption_rules() -> None:
    c = {"name": "OK hand", "keywords": ["hand", "OK", "OK hand", "Hand"]}
    assert captions_for(c) == ["OK hand", "OK hand: hand, ok", "hand", "ok"]  # name itself and repeats dropped
    assert captions_for({"name": "x", "keywords": []}) == ["x"]


def test_split_is_seeded_and_stratified() -> None:
    groups = ["a"] * 10 + ["b"] * 5
    m0, m0b, m1 = split_concepts(groups, 15, 0.2, 0), split_concepts(groups, 15, 0.2, 0), split_concepts(groups, 15, 0.2, 1)
    assert (m0 == m0b).all() and m0[:10].sum() == 2 and m0[10:].sum() == 1
    assert m1[:10].sum() == 2 and m1[10:].sum() == 1


def test_determinism_and_split_seed(emoji_sets) -> None:
    root = str(need_shared(TSV_FILE))
    again = load_dataset("emoji", "test", data_root=root)
    assert torch.equal(again.tensors["image"], emoji_sets["test"].tensors["image"])
    assert torch.equal(again.tensors["text"], emoji_sets["test"].tensors["text"])
    other = load_dataset("emoji", "test", data_root=root, split_seed=1)
    assert other.meta["emoji"] != emoji_sets["test"].meta["emoji"]


def test_fallback_to_emoji_package(tmp_path: Path) -> None:
    ds = load_dataset("emoji", "test", data_root=str(tmp_path))  # no emoji_en.tsv here
    assert "emoji package" in ds.meta["caption_source"]
    assert ds.labels is None and ds.class_names is None
    assert ds.captions == ds.meta["names"]  # one caption (the name) per emoji
    assert 300 < ds.tensors["image"].shape[0] < 500


def _write_tsv(path: Path, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "codepoints\temoji\tgroup\tsubgroup\tname\temoji_version\tskin_tone_variant\tcldr_tts\tcldr_keywords"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_malformed_tsv_names_file_and_field(tmp_path: Path) -> None:
    p = _write_tsv(tmp_path / TSV_FILE, ["1F600\t😀\tSmileys & Emotion\tface-smiling\tgrinning face\t1.0\tmaybe\tgrinning face\tface"])
    with pytest.raises(DataError, match=r"emoji_en\.tsv: line 2: field 'skin_tone_variant'"):
        load_dataset("emoji", "train", data_root=str(tmp_path))
    p.write_text("codepoints\temoji\n1F600\t😀\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"emoji_en\.tsv: missing column"):
        read_tsv(p)


def test_small_tsv_loads(tmp_path: Path) -> None:
    rows = [f"{cp}\t{ch}\tG{i % 2}\tsg{i % 3}\tname {i}\t1.0\t0\tname {i}\tKw{i}|shared" for i, (cp, ch) in
            enumerate([("1F600", "😀"), ("1F436", "🐶"), ("1F34E", "🍎"), ("2764", "❤"), ("1F680", "🚀"), ("1F3B5", "🎵")])]
    _write_tsv(tmp_path / TSV_FILE, rows)
    tr = load_dataset("emoji", "train", data_root=str(tmp_path), image_size=16, test_fraction=0.34)
    te = load_dataset("emoji", "test", data_root=str(tmp_path), image_size=16, test_fraction=0.34)
    assert tr.tensors["image"].shape == (4, 3, 16, 16) and te.tensors["image"].shape == (2, 3, 16, 16)
    assert tr.class_names == ["G0", "G1"] and tr.captions[:4] == ["name 0", "name 0: kw0, shared", "kw0", "shared"]


def test_bad_params(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'imagesize'"):
        load_dataset("emoji", "train", data_root=str(tmp_path), imagesize=16)
    with pytest.raises(ConfigError, match="test_fraction"):
        load_dataset("emoji", "train", data_root=str(tmp_path), test_fraction=1.5)
    with pytest.raises(DataError, match="'valid'"):
        load_dataset("emoji", "valid", data_root=str(tmp_path))


def test_val_split_holds_out_train_concepts(emoji_sets) -> None:
    """val_fraction > 0: 'val' is a stratified, seeded part of the old train concepts, removed from 'train';
    test is untouched; the default (0) is the two-split loader byte for byte (issue 5 calibration)."""
    root = str(need_shared(TSV_FILE))
    tr0, te0 = emoji_sets["train"], emoji_sets["test"]
    explicit = load_dataset("emoji", "train", data_root=root, val_fraction=0.0)
    assert torch.equal(explicit.tensors["image"], tr0.tensors["image"]) and explicit.meta["params"] == tr0.meta["params"]
    assert "val_fraction" not in tr0.meta["params"]  # expert buffers fingerprint the params
    tr, va, te = (load_dataset("emoji", s, data_root=root, val_fraction=0.1) for s in ("train", "val", "test"))
    assert te.meta["emoji"] == te0.meta["emoji"] and torch.equal(te.tensors["text"], te0.tensors["text"])
    assert set(tr.meta["emoji"]) | set(va.meta["emoji"]) == set(tr0.meta["emoji"])
    assert not set(tr.meta["emoji"]) & set(va.meta["emoji"]) and not set(va.meta["emoji"]) & set(te.meta["emoji"])
    n_old = collections.Counter(tr0.labels.tolist())
    n_val = collections.Counter(va.labels.tolist())
    assert all(n_val[g] == round(0.1 * n) for g, n in n_old.items())  # stratified within train
    assert va.meta["params"]["val_fraction"] == 0.1 and len(va.captions) == va.tensors["text"].shape[0]
    x = tr.tensors["image"].double()  # normalised with train-minus-val statistics
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=x.dtype), atol=1e-5)
    assert va.meta["norm"] == tr.meta["norm"] == te.meta["norm"]
    again = load_dataset("emoji", "val", data_root=root, val_fraction=0.1)
    assert again.meta["emoji"] == va.meta["emoji"] and torch.equal(again.tensors["text"], va.tensors["text"])


def test_val_split_needs_a_fraction(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="'val'"):
        load_dataset("emoji", "val", data_root=str(tmp_path))
    with pytest.raises(ConfigError, match="val_fraction"):
        load_dataset("emoji", "train", data_root=str(tmp_path), val_fraction=1.0)
