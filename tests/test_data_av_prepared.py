"""av-prepared loader (data/av_prepared.py): AVDD-layout tensors from local files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from data_fixtures import av_prepared_tensors, write_av_prepared

from mmdistill.data import load_dataset
from mmdistill.data.av_prepared import FRAME_MEAN, FRAME_STD
from mmdistill.errors import ConfigError, DataError, DataMissingError


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_loads_both_formats(tmp_path: Path, fmt: str) -> None:
    d = write_av_prepared(tmp_path / fmt, fmt=fmt)
    tr = load_dataset("av-prepared", "train", path=str(d), name="VGG_subset")
    te = load_dataset("av-prepared", "test", path=str(d), name="VGG_subset")
    assert tr.tensors["audio"].shape == (12, 1, 8, 6) and tr.tensors["visual"].shape == (12, 3, 8, 8)
    assert len(te) == 6 and tr.class_names == ["0", "1", "2"] and tr.meta["name"] == "VGG_subset"
    raw = av_prepared_tensors(12, 0)
    assert torch.equal(tr.tensors["audio"], raw["audio"])  # raw_db: untouched
    m, s = torch.tensor(FRAME_MEAN).view(1, 3, 1, 1), torch.tensor(FRAME_STD).view(1, 3, 1, 1)
    assert torch.allclose(tr.tensors["visual"], (raw["frame"] / 255 - m) / s, atol=1e-6)
    assert torch.equal(tr.labels, raw["label"])


def test_standardize_uses_train_stats(tmp_path: Path) -> None:
    d = write_av_prepared(tmp_path)
    tr = load_dataset("av-prepared", "train", path=str(d), audio_norm="standardize")
    te = load_dataset("av-prepared", "test", path=str(d), audio_norm="standardize")
    assert abs(float(tr.tensors["audio"].mean())) < 1e-5 and abs(float(tr.tensors["audio"].std()) - 1) < 1e-5
    st = tr.meta["norm"]["audio"]
    assert te.meta["norm"]["audio"] == st
    assert torch.allclose(te.tensors["audio"], (av_prepared_tensors(6, 1)["audio"] - st["mean"]) / st["std"], atol=1e-5)


@pytest.mark.parametrize("field", ["audio", "frame", "label"])
def test_mismatched_counts_name_the_file(tmp_path: Path, field: str) -> None:
    d = write_av_prepared(tmp_path, mismatch=field)
    with pytest.raises(DataError, match=r"train\.safetensors: mismatched counts"):
        load_dataset("av-prepared", "train", path=str(d))


def test_bad_files(tmp_path: Path) -> None:
    d = tmp_path / "x"
    d.mkdir()
    with pytest.raises(DataMissingError, match=r"train\.safetensors \(or train\.pt\)"):
        load_dataset("av-prepared", "train", path=str(d))
    torch.save({"audio": torch.zeros(2, 1, 4, 4), "label": torch.zeros(2, dtype=torch.long)}, d / "train.pt")
    with pytest.raises(DataError, match=r"train\.pt: field 'frame' missing"):
        load_dataset("av-prepared", "train", path=str(d))
    (d / "train.pt").write_bytes(b"not a torch file")
    with pytest.raises(DataError, match=r"train\.pt: unreadable"):
        load_dataset("av-prepared", "train", path=str(d))
    torch.save({"audio": torch.zeros(2, 1, 4, 4), "frame": torch.zeros(2, 3, 4, 4), "label": torch.zeros(2)}, d / "train.pt")
    with pytest.raises(DataError, match=r"train\.pt: field 'label' must be a 1-D integer"):
        load_dataset("av-prepared", "train", path=str(d))


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'path'"):
        load_dataset("av-prepared", "train")
    d = write_av_prepared(tmp_path)
    with pytest.raises(ConfigError, match="audio_norm"):
        load_dataset("av-prepared", "train", path=str(d), audio_norm="zscore")
    with pytest.raises(ConfigError, match="'frames'"):
        load_dataset("av-prepared", "train", path=str(d), frames=3)
    with pytest.raises(DataError, match="'dev'"):
        load_dataset("av-prepared", "dev", path=str(d))
