"""Registry contents and dataset_info (data/info.py) for `mmdistill data info NAME`."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_fixtures import need_shared, write_av_prepared

from mmdistill.data import dataset_info, dataset_names, get_dataset_spec
from mmdistill.errors import ConfigError

OURS = ["av-digits", "av-digits-hard", "av-prepared", "coco-mini", "emoji", "karpathy"]
KEYS = {"description", "source", "licence", "obtain", "params", "task"}


def test_all_registered_with_static_info() -> None:
    assert set(OURS) <= set(dataset_names())
    for n in OURS:
        info = get_dataset_spec(n).info()
        assert KEYS <= set(info), n
        assert info["task"] in ("classification", "retrieval")


def test_info_with_split_summaries() -> None:
    need_shared("fsdd/fsdd-recordings.tar.gz", "mnist5k/mnist_5k.csv.gz")
    d = dataset_info("av-digits")
    assert d["splits_loaded"] and d["splits"]["train"]["pairs"] == 2700 and d["splits"]["test"]["pairs"] == 300
    assert d["splits"]["train"]["class_balance"]["7"] == 270 and "norm" in d["splits"]["train"]


def test_info_static_only_without_paths(tmp_path: Path) -> None:
    for n in ("karpathy", "av-prepared"):
        d = dataset_info(n)
        assert d["splits_loaded"] is False and KEYS <= set(d)
    d = dataset_info("av-prepared", path=str(write_av_prepared(tmp_path / "p")))
    assert d["splits"]["test"]["pairs"] == 6


def test_info_reports_missing_data(tmp_path: Path) -> None:
    d = dataset_info("coco-mini", data_root=str(tmp_path))
    assert d["splits_loaded"] is False and "captions.json" in d["error"]
    with pytest.raises(ConfigError):
        dataset_info("no-such-dataset")
