"""av-digits val split: disjoint from train and test, takes-based, default loader unchanged; pairing declared."""

from __future__ import annotations

import pytest
import torch

from mmdistill.data import load_dataset
from mmdistill.errors import ConfigError, DataError

ROOT = "../shared/data"


def _load(split: str, **p):
    return load_dataset("av-digits", split=split, data_root=ROOT, **p)


def test_val_split_is_held_out_of_train_by_take():
    tr0 = _load("train")
    tr, va = _load("train", val_fraction=0.1), _load("val", val_fraction=0.1)
    assert len(tr) + len(va) == len(tr0)
    assert set(va.extra_labels["take"].tolist()) == set(range(5, 5 + round(0.1 * 45)))
    assert int(tr.extra_labels["take"].min()) == 5 + round(0.1 * 45)
    assert va.split == "val" and va.meta["params"]["val_fraction"] == 0.1
    assert torch.bincount(va.labels).tolist() == [len(va) // 10] * 10  # every digit in val
    img_tr, img_va = set(tr.extra_labels["image_index"].tolist()), set(va.extra_labels["image_index"].tolist())
    assert not img_tr & img_va


def test_default_loader_unchanged_and_label_paired():
    tr = _load("train")
    assert tr.pairing == "label" and tr.subset(torch.arange(3)).pairing == "label"
    assert "val_fraction" not in tr.meta["params"]
    with pytest.raises(DataError):
        _load("val")
    with pytest.raises(ConfigError):
        _load("train", val_fraction=1.5)
