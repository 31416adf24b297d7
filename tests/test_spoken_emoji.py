"""spoken-emoji: a tiny build is deterministic, cached, balanced, instance-paired; splits share concepts but not
voices; the val split is disjoint; missing synthesisers give an error naming the Debian package."""

from __future__ import annotations

import pytest
import torch

from mmdistill.data import dataset_info, load_dataset
from mmdistill.data.tts import Voice, synthesize
from mmdistill.errors import ConfigError, DataError

ROOT = "../shared/data"
TINY = {"num_classes": 2, "concepts_per_class": 10, "n_train_voices": 3, "n_test_voices": 2}


def _load(split: str, **p):
    return load_dataset("spoken-emoji", split, ROOT, **{**TINY, **p})


def test_tiny_build_shapes_balance_and_pairing():
    tr, te = _load("train"), _load("test")
    assert tr.pairing == "instance" and te.pairing == "instance"
    assert tr.pair_shape() == {"audio": (1, 32, 32), "visual": (3, 32, 32)}
    assert len(tr) == 2 * 10 * 3 and len(te) == 2 * 10 * 2
    assert torch.bincount(tr.labels).tolist() == [30, 30] and torch.bincount(te.labels).tolist() == [20, 20]
    # every concept has the same number of pairs, and one class
    assert torch.bincount(tr.extra_labels["concept"]).tolist() == [3] * 20
    for c in range(20):
        assert tr.labels[tr.extra_labels["concept"] == c].unique().numel() == 1
    # both art styles are used, and the two pairs of a concept differ (per-pair augmentation)
    assert set(tr.extra_labels["style"].tolist()) == {0, 1}
    a, b = torch.nonzero(tr.extra_labels["concept"] == 0).flatten()[:2]
    assert not torch.equal(tr.tensors["visual"][a], tr.tensors["visual"][b])
    assert tr.meta["synthetic_speech"] is True
    assert abs(float(tr.tensors["audio"].mean())) < 1e-3  # train-standardised


def test_splits_share_concepts_not_voices():
    tr, te = _load("train"), _load("test")
    assert set(tr.extra_labels["concept"].tolist()) == set(te.extra_labels["concept"].tolist())
    assert not set(tr.extra_labels["voice"].tolist()) & set(te.extra_labels["voice"].tolist())
    assert not set(tr.meta["voices_per_split"]["train"]) & set(tr.meta["voices_per_split"]["test"])
    # no test image equals a train image
    flat_tr, flat_te = tr.tensors["visual"].flatten(1), te.tensors["visual"].flatten(1)
    assert torch.cdist(flat_te, flat_tr).min() > 1e-3


def test_deterministic_and_cached(tmp_path, monkeypatch):
    first = _load("train")
    again = _load("train")
    assert again.meta["from_cache"]
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path))
    fresh = _load("train", workers=1)  # rebuilt from scratch, one synthesiser at a time: same bytes
    assert not fresh.meta["from_cache"] and fresh.meta["cache_file"] != first.meta["cache_file"]
    for k in ("audio", "visual"):
        assert torch.equal(first.tensors[k], fresh.tensors[k])
    assert torch.equal(first.extra_labels["concept"], fresh.extra_labels["concept"])
    other = _load("train", aug_seed=1)
    assert not torch.equal(other.tensors["visual"], first.tensors["visual"])


def test_val_split_disjoint_by_voice():
    tr0 = _load("train")
    tr, va = _load("train", val_fraction=0.34), _load("val", val_fraction=0.34)
    assert len(tr) + len(va) == len(tr0)
    assert set(va.extra_labels["voice"].tolist()) == {0}
    assert not set(va.extra_labels["voice"].tolist()) & set(tr.extra_labels["voice"].tolist())
    assert set(va.extra_labels["concept"].tolist()) == set(tr.extra_labels["concept"].tolist())
    assert va.split == "val" and va.meta["params"]["val_fraction"] == 0.34
    with pytest.raises(DataError):
        _load("val")
    with pytest.raises(ConfigError):
        _load("train", val_fraction=0.9)  # no train voice left
    with pytest.raises(ConfigError):
        _load("train", bogus=1)


def test_missing_binary_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DataError, match=r"espeak-ng.*make tts"):
        synthesize("grinning face", Voice("espeak-ng", "en-us", 150, 50), 8000)
    with pytest.raises(DataError, match=r"apt-get install flite"):
        synthesize("grinning face", Voice("flite", "slt", 1.0, 0), 8000)
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="espeak-ng"):
        _load("train")


def test_info_says_synthetic_and_licences():
    info = dataset_info("spoken-emoji", ROOT, **TINY)
    assert info["splits_loaded"] and info["pairing"].startswith("instance")
    assert "synthetic" in info["speech"] and "CC BY-SA 4.0" in info["licence"] and "OFL" in info["licence"]
    assert info["splits"]["test"]["pairs"] == 40


def test_shuffle_within_class_control_keeps_classes_and_breaks_instances():
    train, shuffled = _load("train"), _load("train", shuffle_within_class=7)
    assert torch.equal(shuffled.tensors["audio"], train.tensors["audio"]) and torch.equal(shuffled.labels, train.labels)
    assert shuffled.pairing == "label" and train.pairing == "instance"
    moved = (shuffled.tensors["visual"] != train.tensors["visual"]).flatten(1).any(1)
    assert moved.float().mean() > 0.5  # most pairs re-paired ...
    for c in range(train.num_classes):  # ... only within their class: the class's visual rows, in another order
        rows = train.labels == c
        a = train.tensors["visual"][rows].flatten(1).sum(1).sort().values
        b = shuffled.tensors["visual"][rows].flatten(1).sum(1).sort().values
        torch.testing.assert_close(a, b)
    assert torch.equal(_load("test", shuffle_within_class=7).tensors["visual"], _load("test").tensors["visual"])
    assert torch.equal(_load("train", shuffle_within_class=7).tensors["visual"], shuffled.tensors["visual"])
    with pytest.raises(ConfigError):
        _load("train", shuffle_within_class="yes")
