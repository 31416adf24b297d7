"""coco-mini and karpathy loaders (data/coco_mini.py, data/karpathy.py; offline-data.md §6 Image–text #2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from data_fixtures import need_shared

from mmdistill.data import load_dataset
from mmdistill.data.coco_mini import CAPTIONS_FILE, IMAGE_DIR
from mmdistill.data.karpathy import coco_to_karpathy
from mmdistill.errors import ConfigError, DataError, DataMissingError


@pytest.fixture(scope="module")
def coco() -> dict[str, object]:
    root = need_shared(CAPTIONS_FILE)
    return {s: load_dataset("coco-mini", s, data_root=str(root)) for s in ("train", "test")}


@pytest.fixture(scope="module")
def karpathy_files(tmp_path_factory) -> dict[str, Path]:
    root = need_shared(CAPTIONS_FILE)
    return coco_to_karpathy(root / CAPTIONS_FILE, tmp_path_factory.mktemp("karpathy"))


def _tiny_coco(tmp_path: Path, n: int = 3) -> Path:
    """A data root with the first ``n`` train2017 and ``n`` val2017 coco-mini images (copies)."""
    src = need_shared(CAPTIONS_FILE)
    data = json.loads((src / CAPTIONS_FILE).read_text())
    keep = [im for o in ("train2017", "val2017") for im in [i for i in data["images"] if i["split_origin"] == o][:n]]
    ids = {im["id"] for im in keep}
    data["images"], data["annotations"] = keep, [a for a in data["annotations"] if a["image_id"] in ids]
    root = tmp_path / "data"
    (root / IMAGE_DIR).mkdir(parents=True)
    (root / CAPTIONS_FILE).write_text(json.dumps(data))
    for im in keep:
        shutil.copy(src / IMAGE_DIR / im["file_name"], root / IMAGE_DIR / im["file_name"])
    return root


def _split_of(root: Path, file_name: str) -> str:
    images = json.loads((root / CAPTIONS_FILE).read_text())["images"]
    origin = next(im["split_origin"] for im in images if im["file_name"] == file_name)
    return "train" if origin == "train2017" else "test"


def test_coco_mini_shapes_and_split(coco) -> None:
    tr, te = coco["train"], coco["test"]
    assert tr.tensors["image"].shape == (26, 3, 32, 32) and te.tensors["image"].shape == (25, 3, 32, 32)
    assert tr.tensors["text"].shape == (130, 384) and te.tensors["text"].shape == (125, 384)
    for ds in (tr, te):
        assert torch.bincount(ds.text_to_image).tolist() == [5] * ds.tensors["image"].shape[0]
        assert len(ds.captions) == len(ds) and ds.task == "retrieval"
        assert torch.allclose(ds.tensors["text"].norm(dim=1), torch.ones(len(ds)), atol=1e-5)
    assert not set(tr.meta["files"]) & set(te.meta["files"])
    assert tr.captions[0] == "a family is sitting down at a table to have cake"


def test_coco_mini_deterministic_and_image_size(coco) -> None:
    root = str(need_shared(CAPTIONS_FILE))
    again = load_dataset("coco-mini", "test", data_root=root)
    assert torch.equal(again.tensors["image"], coco["test"].tensors["image"])
    assert load_dataset("coco-mini", "test", data_root=root, image_size=16).tensors["image"].shape == (25, 3, 16, 16)


def test_truncated_jpeg_names_the_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))
    root = _tiny_coco(tmp_path)
    victim = sorted((root / IMAGE_DIR).glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:2000])
    with pytest.raises(DataError, match=rf"{victim.name}: corrupt or truncated image"):
        load_dataset("coco-mini", _split_of(root, victim.name), data_root=str(root))


def test_bad_json_and_missing_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))
    root = _tiny_coco(tmp_path)
    victim = sorted((root / IMAGE_DIR).glob("*.jpg"))[0]
    victim.unlink()
    with pytest.raises(DataMissingError, match=rf"{victim.name}: missing file for dataset 'coco-mini'"):
        load_dataset("coco-mini", _split_of(root, victim.name), data_root=str(root))
    (root / CAPTIONS_FILE).write_text('{"images": [], "annotations": [')
    with pytest.raises(DataError, match=r"captions\.json: malformed JSON"):
        load_dataset("coco-mini", "train", data_root=str(root))
    (root / CAPTIONS_FILE).write_text('{"images": [{"id": 1}], "annotations": []}')
    with pytest.raises(DataError, match=r"captions\.json: images\[0\]\.file_name"):
        load_dataset("coco-mini", "train", data_root=str(root))
    with pytest.raises(DataMissingError, match="captions.json"):
        load_dataset("coco-mini", "train", data_root=str(tmp_path / "nowhere"))


def test_karpathy_round_trip(coco, karpathy_files) -> None:
    train_rows = json.loads(karpathy_files["train"].read_text())
    test_rows = json.loads(karpathy_files["test"].read_text())
    assert len(train_rows) == 130 and set(train_rows[0]) == {"image", "caption", "image_id"}
    assert len(test_rows) == 25 and len(test_rows[0]["caption"]) == 5
    image_root = str(need_shared(CAPTIONS_FILE) / IMAGE_DIR)
    for split in ("train", "test"):
        k = load_dataset("karpathy", split, ann_dir=str(karpathy_files["train"].parent), image_root=image_root)
        c = coco[split]
        assert torch.equal(k.tensors["image"], c.tensors["image"]) and torch.equal(k.tensors["text"], c.tensors["text"])
        assert torch.equal(k.text_to_image, c.text_to_image) and k.captions == c.captions
    explicit = load_dataset("karpathy", "test", test_file=str(karpathy_files["test"]), image_root=image_root, name="coco-mini")
    assert explicit.meta["name"] == "coco-mini" and explicit.tensors["image"].shape[0] == 25


def test_karpathy_config_errors(tmp_path: Path, karpathy_files) -> None:
    image_root = str(need_shared(CAPTIONS_FILE) / IMAGE_DIR)
    with pytest.raises(ConfigError, match="ann_dir"):
        load_dataset("karpathy", "train", image_root=image_root)
    with pytest.raises(ConfigError, match="image_root"):
        load_dataset("karpathy", "train", ann_dir=str(karpathy_files["train"].parent))
    with pytest.raises(ConfigError, match=r"\*_train\.json"):
        load_dataset("karpathy", "train", ann_dir=str(tmp_path), image_root=image_root)
    with pytest.raises(ConfigError, match="'ann_dirs'"):
        load_dataset("karpathy", "train", ann_dirs=str(tmp_path), image_root=image_root)


def test_karpathy_bad_rows_and_missing_image(tmp_path: Path) -> None:
    image_root = need_shared(CAPTIONS_FILE) / IMAGE_DIR
    bad = tmp_path / "x_train.json"
    bad.write_text(json.dumps([{"image": "000000000790.jpg", "caption": 3}]))
    with pytest.raises(DataError, match=r"x_train\.json: row 0: field 'caption'"):
        load_dataset("karpathy", "train", train_file=str(bad), image_root=str(image_root))
    bad.write_text("[{]")
    with pytest.raises(DataError, match=r"x_train\.json: malformed JSON"):
        load_dataset("karpathy", "train", train_file=str(bad), image_root=str(image_root))
    bad.write_text(json.dumps([{"image": "nope.jpg", "caption": "a cat"}]))
    with pytest.raises(DataMissingError, match=r"nope\.jpg"):
        load_dataset("karpathy", "train", train_file=str(bad), image_root=str(image_root))
