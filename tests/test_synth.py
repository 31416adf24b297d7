import json

import pytest
import torch

from mmdistill.errors import DataError, IntegrityError
from mmdistill.synth import SyntheticSet


def _set():
    return SyntheticSet(
        tensors={"audio": torch.randn(4, 1, 8, 8), "visual": torch.randn(4, 1, 6, 6)},
        labels=torch.tensor([0, 0, 1, 1]),
        extras={"lr": torch.tensor([0.1])},
        meta={"method": "test", "floats_per_pair": 64 + 36, "budget": {"value": 2, "unit": "ipc"}},
    )


def test_roundtrip_and_budget(tmp_path):
    s = _set()
    s.save(tmp_path)
    t = SyntheticSet.load(tmp_path)
    assert torch.equal(t.tensors["audio"], s.tensors["audio"]) and torch.equal(t.labels, s.labels)
    assert t.meta["method"] == "test"
    b = t.budget()
    assert b["stored_floats"] == 4 * 100 + 1
    assert b["pair_equivalents"] == pytest.approx(4.01)
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert set(man["tensors"]) == {"tensor/audio", "tensor/visual", "labels", "extra/lr"}


def test_edited_file_is_rejected(tmp_path):
    _set().save(tmp_path)
    p = tmp_path / "synthetic.safetensors"
    raw = bytearray(p.read_bytes())
    raw[-3] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="synthetic.safetensors: sha256 mismatch"):
        SyntheticSet.load(tmp_path)


def test_nan_in_loaded_tensor_names_field(tmp_path):
    from safetensors.torch import save as st_save

    from mmdistill.io import sha256_bytes
    from mmdistill.synth import tensor_sha256

    s = _set()
    s.save(tmp_path)
    man = json.loads((tmp_path / "manifest.json").read_text())
    bad = s._flat()
    bad["tensor/audio"][0, 0, 0, 0] = float("nan")
    blob = st_save(bad)
    (tmp_path / "synthetic.safetensors").write_bytes(blob)
    man["files"]["synthetic.safetensors"] = sha256_bytes(blob)
    man["tensors"]["tensor/audio"]["sha256"] = tensor_sha256(bad["tensor/audio"])
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(IntegrityError, match="'tensor/audio' contains NaN"):
        SyntheticSet.load(tmp_path)


def test_missing_and_garbled_manifest(tmp_path):
    with pytest.raises(IntegrityError, match="manifest.json: missing"):
        SyntheticSet.load(tmp_path)
    _set().save(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        SyntheticSet.load(tmp_path)


def test_shape_mismatch_with_dataset():
    s = _set()
    s.check_compatible({"audio": (1, 8, 8), "visual": (1, 6, 6)})
    with pytest.raises(DataError, match="'tensor/visual' has per-pair shape"):
        s.check_compatible({"audio": (1, 8, 8), "visual": (1, 28, 28)}, dataset="av-digits")
    with pytest.raises(DataError, match="no modality 'image'"):
        s.check_compatible({"image": (3, 32, 32)})


def test_save_refuses_nan_and_leaves_nothing(tmp_path):
    s = _set()
    s.tensors["audio"][0, 0, 0, 0] = float("inf")
    with pytest.raises(IntegrityError):
        s.save(tmp_path)
    assert not any(tmp_path.iterdir())


def test_saved_file_bytes_are_deterministic(tmp_path):
    """Same set -> same synthetic.safetensors bytes (and sha256), so job keys built on the hash stay stable."""
    import hashlib

    import torch

    from mmdistill.synth import SyntheticSet

    syn = SyntheticSet(tensors={"image": torch.arange(12.0).reshape(3, 4), "text": torch.ones(3, 2)}, meta={"a": 1})
    digests = set()
    for i in range(8):
        syn.save(tmp_path / f"r{i}")
        digests.add(hashlib.sha256((tmp_path / f"r{i}" / "synthetic.safetensors").read_bytes()).hexdigest())
    assert len(digests) == 1
