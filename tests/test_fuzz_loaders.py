"""Hypothesis-fuzzed inputs to every loader (issue 8): a loader either succeeds or raises a typed
:class:`MMDistillError` - never another exception, never a hang (per-example deadline).

Fixtures are tiny slices of the real layouts written into temp dirs with one file fuzzed: WAV members of the
FSDD archive and the archive itself (``av-digits``), the MNIST CSV, images (``load_image``, used by coco-mini and
karpathy), COCO caption JSON (``coco-mini``), Karpathy JSON (``karpathy``), the emoji caption TSV, AVDD tensor
files (``av-prepared``), synthetic sets (``synthetic.safetensors`` + ``manifest.json``), expert buffers and run
checkpoints. MiniLM is replaced by a stub (``encode_texts``) so the caption path runs without loading the model.
Deterministic (``derandomize=True``), example counts kept small so the file takes well under a minute;
``MMDISTILL_FUZZ_SCALE=10`` multiplies them for a longer session.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import tarfile
import tempfile
import zlib
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from data_fixtures import SHARED, wav_bytes
from mmdistill.errors import MMDistillError

pytestmark = pytest.mark.slow  # hypothesis fuzzing of every loader

SCALE = float(os.environ.get("MMDISTILL_FUZZ_SCALE", "1"))  # e.g. 10 for a long local fuzzing session


def n(k: int) -> int:
    return max(1, int(k * SCALE))


# no "explain" phase: its line tracer makes torch calls 100x slower on Python < 3.12
FUZZ = settings(deadline=timedelta(seconds=20), derandomize=True, database=None, max_examples=n(30),
                phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large, HealthCheck.filter_too_much])


def typed_or_ok(fn, *args, **kw):  # noqa: ANN001, ANN201
    """Run a loader: success or a typed error pass; anything else propagates and fails the example."""
    try:
        return fn(*args, **kw)
    except MMDistillError as e:
        assert str(e), "a typed error needs a message"
        return e


@pytest.fixture(autouse=True)
def _offline_text_encoder(monkeypatch, tmp_path):
    """MiniLM stub (deterministic vectors) and a private cache dir; the loaders' own code paths stay real."""
    import mmdistill.nets.text_encoder as te

    def fake(texts, batch_size=128):  # noqa: ANN001, ANN202
        for t in texts:
            t.encode("utf-8")  # as strict as a tokenizer about unencodable text
        return torch.zeros(len(texts), 384)

    monkeypatch.setattr(te, "encode_texts", fake)
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))


def _fresh_cache() -> None:
    os.environ["MMDISTILL_CACHE"] = tempfile.mkdtemp(prefix="mmd-fuzz-cache-")


def mutate(data: bytes, draw) -> bytes:  # noqa: ANN001
    """One structural mutation of ``data``: truncate, flip bytes, splice random bytes, or duplicate a slice."""
    kind = draw(st.sampled_from(["truncate", "flip", "splice", "dup"]))
    n = len(data)
    if kind == "truncate":
        return data[: draw(st.integers(0, max(0, n - 1)))]
    if kind == "flip":
        b = bytearray(data)
        for i in draw(st.lists(st.integers(0, max(0, n - 1)), min_size=1, max_size=8)):
            if n:
                b[i] ^= draw(st.integers(1, 255))
        return bytes(b)
    if kind == "splice":
        i = draw(st.integers(0, n))
        return data[:i] + draw(st.binary(max_size=64)) + data[i + draw(st.integers(0, 64)):]
    i = draw(st.integers(0, n))
    return data[:i] + data[i: i + draw(st.integers(0, 256))] * 2 + data[i:]


# =============================================================================================== WAV / FSDD
def _wav(fmt: int, ch: int, sr: int, bits: int, payload: bytes, size: int | None) -> bytes:
    block = (ch * bits // 8) & 0xFFFF
    fmtc = struct.pack("<HHIIHH", fmt & 0xFFFF, ch & 0xFFFF, sr & 0xFFFFFFFF, (sr * block) & 0xFFFFFFFF, block, bits & 0xFFFF)
    ds = len(payload) if size is None else size
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmtc + b"data" + struct.pack("<I", ds & 0xFFFFFFFF) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _float_wav(x: np.ndarray, sr: int = 8000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), sr, format="WAV", subtype="FLOAT")
    return buf.getvalue()


VALID_WAVS = [wav_bytes(300.0, 2000), _float_wav(np.sin(np.arange(3000) / 7.0)[:, None].repeat(2, 1), 16000)]


@st.composite
def wav_inputs(draw) -> bytes:  # noqa: ANN001
    kind = draw(st.sampled_from(["header", "mutated", "random", "empty", "nonfinite"]))
    if kind == "header":  # a well-formed RIFF/WAVE header with fuzzed fields (mostly plausible) and garbage samples
        fmt = draw(st.sampled_from([1, 1, 1, 3, 0xFFFE, 2]) | st.integers(0, 0xFFFF))
        bits = draw(st.sampled_from([16, 16, 8, 24, 32, 64, 0, 7]))
        if fmt == 3 and bits not in (32, 64):
            bits = draw(st.sampled_from([32, 64, bits]))
        return _wav(fmt, draw(st.sampled_from([1, 1, 2, 0, 6]) | st.integers(0, 0xFFFF)),
                    draw(st.sampled_from([0, 1, 999, 1000, 8000, 44100, 384000, 384001, 2**31 - 1, 2**32 - 1])
                         | st.integers(0, 2**32 - 1)),
                    bits, draw(st.binary(min_size=0, max_size=3000)), draw(st.none() | st.none() | st.integers(0, 2**32 - 1)))
    if kind == "mutated":
        return mutate(draw(st.sampled_from(VALID_WAVS)), draw)
    if kind == "random":
        return draw(st.binary(max_size=2000))
    if kind == "empty":
        return b""
    x = np.sin(np.arange(800) / 5.0)
    x[draw(st.integers(0, 799))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return _float_wav(x[:, None])


def _mnist_csv_gz(per_class: int = 2) -> bytes:
    rng = np.random.default_rng(0)
    rows = [np.concatenate([rng.integers(0, 256, 784), [c]]) for c in range(10) for _ in range(per_class)]
    buf = io.StringIO()
    np.savetxt(buf, np.stack(rows), fmt="%d", delimiter=",")
    return gzip.compress(buf.getvalue().encode())


MNIST_GZ = _mnist_csv_gz()


def _av_root(d: Path, members: dict[str, bytes], archive: bytes | None = None, mnist: bytes = MNIST_GZ) -> Path:
    (d / "fsdd").mkdir(parents=True, exist_ok=True)
    (d / "mnist5k").mkdir(parents=True, exist_ok=True)
    if archive is None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        archive = buf.getvalue()
    (d / "fsdd" / "fsdd-recordings.tar.gz").write_bytes(archive)
    (d / "mnist5k" / "mnist_5k.csv.gz").write_bytes(mnist)
    return d


GOOD_MEMBERS = {"recordings/3_bob_6.wav": wav_bytes(420.0, 2500), "recordings/3_bob_0.wav": wav_bytes(430.0, 2400)}


def _load_av(root: Path):  # noqa: ANN202
    from mmdistill.data import load_dataset

    _fresh_cache()
    ds = typed_or_ok(load_dataset, "av-digits", "train", str(root), n_mels=8, frames=8)
    if not isinstance(ds, MMDistillError):
        assert torch.isfinite(ds.tensors["audio"]).all(), "a loaded set must not hold NaN/inf"
    return ds


@settings(FUZZ, max_examples=n(60))
@given(wav=wav_inputs())
@example(wav=_wav(1, 1, 2**31 - 1, 16, bytes(800), None))  # absurd declared rate: resampling would need 320 GB
@example(wav=_wav(1, 2, 1, 16, bytes(4000), None))
@example(wav=_float_wav(np.array([[0.1], [np.nan], [0.2]] * 100)))
def test_fuzz_wav_member_of_fsdd_archive(wav):
    with tempfile.TemporaryDirectory() as d:
        _load_av(_av_root(Path(d), {**GOOD_MEMBERS, "recordings/3_alice_7.wav": wav}))


@settings(FUZZ, max_examples=n(15))
@given(data=st.data())
def test_fuzz_fsdd_archive_and_mnist_csv(data):
    good_tar = io.BytesIO()
    with tarfile.open(fileobj=good_tar, mode="w:gz") as tf:
        for name, b in GOOD_MEMBERS.items():
            info = tarfile.TarInfo(name)
            info.size = len(b)
            tf.addfile(info, io.BytesIO(b))
    which = data.draw(st.sampled_from(["archive", "mnist", "mnist-text"]))
    with tempfile.TemporaryDirectory() as d:
        if which == "archive":
            root = _av_root(Path(d), {}, archive=data.draw(st.binary(max_size=500) | st.just(b"")) if data.draw(st.booleans())
                            else mutate(good_tar.getvalue(), data.draw))
        elif which == "mnist":
            root = _av_root(Path(d), GOOD_MEMBERS, mnist=mutate(MNIST_GZ, data.draw))
        else:  # valid gzip, fuzzed CSV text (wrong column counts, huge / negative / non-numeric values)
            rows = data.draw(st.lists(st.lists(st.integers(-(2**70), 2**70) | st.sampled_from(["x", "", "nan", "1e400"]),
                                               min_size=0, max_size=790), min_size=1, max_size=3))
            text = "\n".join(",".join(map(str, r)) for r in rows)
            root = _av_root(Path(d), GOOD_MEMBERS, mnist=gzip.compress(text.encode()))
        _load_av(root)


# ============================================================================================== images
def _png(w: int = 6, h: int = 5) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _png_with_dims(w: int, h: int, fix_crc: bool) -> bytes:
    b = bytearray(_png())
    b[16:20], b[20:24] = struct.pack(">I", w & 0xFFFFFFFF), struct.pack(">I", h & 0xFFFFFFFF)
    if fix_crc:
        b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    return bytes(b)


def _jpeg_with_dims(w: int, h: int) -> bytes:
    b = bytearray(_jpeg())
    i = b.find(b"\xff\xc0")  # baseline SOF0: marker, length(2), precision(1), height(2), width(2)
    b[i + 5:i + 7], b[i + 7:i + 9] = struct.pack(">H", h & 0xFFFF), struct.pack(">H", w & 0xFFFF)
    return bytes(b)


REAL_JPEG = next(iter(sorted((SHARED / "coco-mini-cc" / "images").glob("*.jpg"))), None)


@st.composite
def image_inputs(draw) -> bytes:  # noqa: ANN001
    kind = draw(st.sampled_from(["random", "empty", "mutated", "png-dims", "jpeg-dims", "real-truncated"]))
    if kind == "random":
        return draw(st.binary(max_size=1000))
    if kind == "empty":
        return b""
    if kind == "mutated":
        return mutate(draw(st.sampled_from([_png(), _jpeg()])), draw)
    big = st.sampled_from([0, 1, 30000, 65535, 2**31 - 1, 2**32 - 1]) | st.integers(0, 2**32 - 1)
    if kind == "png-dims":  # huge declared dimensions (decompression-bomb headers), CRC fixed or not
        return _png_with_dims(draw(big), draw(big), draw(st.booleans()))
    if kind == "jpeg-dims":
        return _jpeg_with_dims(draw(st.integers(0, 65535)), draw(st.integers(0, 65535)))
    data = REAL_JPEG.read_bytes() if REAL_JPEG else _jpeg()
    return data[: draw(st.integers(0, len(data) - 1))]


@settings(FUZZ, max_examples=n(80))
@given(blob=image_inputs(), ext=st.sampled_from([".jpg", ".png", ".gif"]))
def test_fuzz_image_file(blob, ext):
    from mmdistill.data._common import load_image

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"img{ext}"
        p.write_bytes(blob)
        out = typed_or_ok(load_image, p, 8, "fuzz")
        if not isinstance(out, MMDistillError):
            assert out.shape == (8, 8, 3) and out.dtype == np.uint8
        else:
            assert str(p) in str(out)  # the error names the file


# =========================================================================================== caption JSON
def _coco_slice(d: Path) -> tuple[Path, dict]:
    """coco-mini-cc layout with 2 train2017 + 1 val2017 images (copies of the real JPEGs when available)."""
    src = SHARED / "coco-mini-cc"
    imgs = d / "coco-mini-cc" / "images"
    imgs.mkdir(parents=True)
    if (src / "captions.json").is_file():
        full = json.loads((src / "captions.json").read_text(encoding="utf-8"))
        chosen = [im for im in full["images"] if im["split_origin"] == "train2017"][:2]
        chosen += [im for im in full["images"] if im["split_origin"] == "val2017"][:1]
        ids = {im["id"] for im in chosen}
        data = {"images": chosen, "annotations": [a for a in full["annotations"] if a["image_id"] in ids]}
        for im in chosen:
            (imgs / im["file_name"]).write_bytes((src / "images" / im["file_name"]).read_bytes())
    else:  # pragma: no cover - synthetic stand-in when the shared data is absent
        data = {"images": [], "annotations": []}
        for i, origin in enumerate(["train2017", "train2017", "val2017"]):
            data["images"].append({"id": i + 1, "file_name": f"{i}.jpg", "split_origin": origin})
            data["annotations"] += [{"id": 10 * i + k, "image_id": i + 1, "caption": f"a photo {i} {k}"} for k in range(5)]
            (imgs / f"{i}.jpg").write_bytes(_jpeg())
    return d, data


json_scalars = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=12)
weird = st.none() | st.booleans() | st.integers(-5, 5) | st.floats() | st.text(max_size=6) | st.lists(st.integers(), max_size=2) \
    | st.just({}) | st.just("\ud800 lone surrogate") | st.just("../../etc/passwd") | st.just("")


@st.composite
def mutated_json(draw, base) -> bytes:  # noqa: ANN001
    """The real slice with one field replaced / dropped / retyped, or random JSON, or non-UTF-8 / truncated bytes."""
    kind = draw(st.sampled_from(["field", "field", "drop", "random", "bytes"]))
    if kind == "random":
        return json.dumps(draw(json_values)).encode()
    text = json.dumps(base).encode()
    if kind == "bytes":
        return draw(st.sampled_from([b"\xff\xfe\x00", b"", text[: len(text) // 2], text.replace(b"a", b"\xe9", 3)]))
    obj = json.loads(text)
    paths: list[list] = []

    def walk(o, path):  # noqa: ANN001, ANN202
        paths.append(path)
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, path + [k])
        elif isinstance(o, list):
            for i, v in enumerate(o[:3]):
                walk(v, path + [i])

    walk(obj, [])
    path = draw(st.sampled_from(paths[1:] if len(paths) > 1 else paths))
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if kind == "drop" and path:
        del parent[path[-1]]
    elif path:
        parent[path[-1]] = draw(weird)
    else:
        obj = draw(weird)
    return json.dumps(obj).encode()


def _coco_base() -> dict:
    with tempfile.TemporaryDirectory() as d:
        return _coco_slice(Path(d))[1]


COCO_BASE = _coco_base()


@settings(FUZZ, max_examples=n(60))
@given(blob=mutated_json(COCO_BASE))
def test_fuzz_coco_caption_json(blob):
    from mmdistill.data import load_dataset

    with tempfile.TemporaryDirectory() as d:
        root, _ = _coco_slice(Path(d))
        (root / "coco-mini-cc" / "captions.json").write_bytes(blob)
        _fresh_cache()
        for split in ("train", "test"):
            typed_or_ok(load_dataset, "coco-mini", split, str(root), image_size=8)


@settings(FUZZ, max_examples=n(10))
@given(blob=image_inputs())
def test_fuzz_coco_image_through_the_loader(blob):
    from mmdistill.data import load_dataset

    with tempfile.TemporaryDirectory() as d:
        root, data = _coco_slice(Path(d))
        (root / "coco-mini-cc" / "captions.json").write_text(json.dumps(data))
        (root / "coco-mini-cc" / "images" / data["images"][0]["file_name"]).write_bytes(blob)
        _fresh_cache()
        out = typed_or_ok(load_dataset, "coco-mini", "train", str(root), image_size=8)
        if isinstance(out, MMDistillError):
            assert data["images"][0]["file_name"] in str(out)


def _karpathy_base() -> list:
    rows = []
    for im in COCO_BASE["images"][:2]:
        rows += [{"image": im["file_name"], "caption": a["caption"], "image_id": im["id"]}
                 for a in COCO_BASE["annotations"] if a["image_id"] == im["id"]][:2]
    return rows


@settings(FUZZ, max_examples=n(60))
@given(blob=mutated_json(_karpathy_base()))
def test_fuzz_karpathy_json(blob):
    from mmdistill.data import load_dataset

    with tempfile.TemporaryDirectory() as d:
        root, _ = _coco_slice(Path(d))
        ann = Path(d) / "fuzz_train.json"
        ann.write_bytes(blob)
        _fresh_cache()
        typed_or_ok(load_dataset, "karpathy", "train", str(root), train_file=str(ann),
                    image_root=str(root / "coco-mini-cc" / "images"), image_size=8)


@settings(FUZZ, max_examples=n(20))
@given(data=st.data())
def test_fuzz_emoji_caption_tsv(data):
    from mmdistill.data.emoji import TSV_COLUMNS, read_tsv

    header = "\t".join(TSV_COLUMNS)
    good = "\t".join(["1F600", "\U0001F600", "Smileys", "face-smiling", "grinning face", "0", "face|grin"])
    cell = st.text(max_size=6) | st.sampled_from(["0", "1", "", '"', "\x00", "\r"])
    rows = data.draw(st.lists(st.lists(cell, min_size=0, max_size=9).map("\t".join), max_size=4))
    text = "\n".join([data.draw(st.sampled_from([header, header[:20], ""])), good, *rows]).encode("utf-8", "surrogatepass")
    if data.draw(st.booleans()):
        text = mutate(text, data.draw)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "emoji_en.tsv"
        p.write_bytes(text)
        typed_or_ok(read_tsv, p)


# ================================================================================ safetensors / manifests
def _synthetic_dir(d: Path) -> Path:
    from mmdistill.synth import SyntheticSet

    g = torch.Generator().manual_seed(0)
    SyntheticSet(tensors={"audio": torch.randn(3, 1, 4, 4, generator=g), "visual": torch.randn(3, 1, 5, 5, generator=g)},
                 labels=torch.tensor([0, 1, 2]), extras={"lr": torch.tensor([0.1])}, meta={"method": "fuzz"}).save(d)
    return d


def _st_header(blob: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _st_blob(header: dict, body: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


DTYPES = ["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL", "F8_E4M3", "C64", "XX"]


@st.composite
def synthetic_edits(draw) -> tuple[str, object]:  # noqa: ANN001
    kind = draw(st.sampled_from(["st-random", "st-mutated", "st-header", "manifest", "manifest-shape"]))
    return kind, draw(st.randoms(use_true_random=False))


@settings(FUZZ, max_examples=n(100))
@given(edit=synthetic_edits(), data=st.data())
def test_fuzz_synthetic_set_files(edit, data):
    from mmdistill.io import sha256_bytes
    from mmdistill.synth import SyntheticSet, tensor_sha256

    kind, _ = edit
    with tempfile.TemporaryDirectory() as d:
        d = _synthetic_dir(Path(d))
        tp, mp = d / "synthetic.safetensors", d / "manifest.json"
        blob, man = tp.read_bytes(), json.loads(mp.read_text())
        fix_sha = data.draw(st.booleans())
        if kind == "st-random":
            blob = data.draw(st.binary(max_size=300))
        elif kind == "st-mutated":
            blob = mutate(blob, data.draw)
        elif kind == "st-header":  # a parseable header declaring other dtypes / shapes / offsets
            header, body = _st_header(blob)
            key = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
            field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", "drop-body", "nan"]))
            if field == "dtype":
                header[key]["dtype"] = data.draw(st.sampled_from(DTYPES))
            elif field == "shape":
                header[key]["shape"] = data.draw(st.lists(st.integers(0, 40), max_size=4) | weird)
            elif field == "data_offsets":
                header[key]["data_offsets"] = data.draw(st.lists(st.integers(-5, 2**40), min_size=0, max_size=3) | weird)
            elif field == "drop-body":
                body = body[: data.draw(st.integers(0, max(0, len(body) - 1)))]
            else:  # well-formed file whose float tensor holds NaN, with a consistent manifest
                s, e = header["tensor/audio"]["data_offsets"]
                body = body[:s] + struct.pack("<f", float("nan")) + body[s + 4:]
            blob = _st_blob(header, body)
            if data.draw(st.booleans()):  # make the manifest agree with the edited header where it can
                try:
                    from safetensors.torch import load as st_load

                    for k, t in st_load(blob).items():
                        if k in man["tensors"]:
                            man["tensors"][k].update(shape=list(t.shape), dtype=str(t.dtype).replace("torch.", ""),
                                                     sha256=tensor_sha256(t))
                except Exception:  # noqa: BLE001 - the header does not parse: nothing to agree with
                    pass
        elif kind == "manifest":
            mp.write_bytes(data.draw(mutated_json(man)))
            man = None
        else:  # per-tensor records disagreeing with the file
            k = data.draw(st.sampled_from(sorted(man["tensors"])))
            man["tensors"][k][data.draw(st.sampled_from(["shape", "sha256", "dtype"]))] = data.draw(weird)
        if man is not None:
            if fix_sha:
                man["files"]["synthetic.safetensors"] = sha256_bytes(blob)
            mp.write_text(json.dumps(man))
        tp.write_bytes(blob)
        out = typed_or_ok(SyntheticSet.load, d)
        if not isinstance(out, MMDistillError):
            out.validate()


@settings(FUZZ, max_examples=n(80))
@given(data=st.data())
def test_fuzz_av_prepared_tensor_files(data):
    from safetensors.torch import save as st_save

    from data_fixtures import av_prepared_tensors
    from mmdistill.data import load_dataset

    good = {k: v.contiguous() for k, v in av_prepared_tensors(6, 0).items()}
    kind = data.draw(st.sampled_from(["bytes", "header", "tensors", "pt"]))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        if kind == "pt":
            name, blob = "train.pt", data.draw(st.binary(max_size=300) | st.just(b""))
            if data.draw(st.booleans()):
                buf = io.BytesIO()
                torch.save(data.draw(st.sampled_from([good, [1, 2], {"audio": 1}, {k: v.double() for k, v in good.items()}])), buf)
                blob = mutate(buf.getvalue(), data.draw) if data.draw(st.booleans()) else buf.getvalue()
        else:
            name, blob = "train.safetensors", st_save(good)
            if kind == "bytes":
                blob = mutate(blob, data.draw)
            elif kind == "header":
                header, body = _st_header(blob)
                key = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
                header[key]["dtype"] = data.draw(st.sampled_from(DTYPES))
                header[key]["shape"] = data.draw(st.sampled_from([header[key]["shape"], [], [6], [0, 1, 2, 3], [6, 2]]))
                blob = _st_blob(header, body)
            else:  # well-formed files with wrong fields / dtypes / ranks / values
                t = dict(good)
                k = data.draw(st.sampled_from(["audio", "frame", "label", "extra"]))
                t[k] = data.draw(st.sampled_from([torch.zeros(6), torch.zeros(6, 2, dtype=torch.int64), torch.zeros(0, 1, 8, 6),
                                                  torch.full((6, 1, 8, 6), float("nan")), torch.zeros(6, dtype=torch.bool),
                                                  torch.zeros(6, 3, 8, 8, dtype=torch.uint8), torch.tensor(3.0),
                                                  torch.zeros(6, dtype=torch.complex64), torch.zeros(6, dtype=torch.uint64),
                                                  -torch.ones(6, dtype=torch.int64), torch.zeros(6, 3, 8, 8, dtype=torch.float16)]))
                if data.draw(st.booleans()):
                    del t[data.draw(st.sampled_from(["audio", "frame", "label"]))]
                blob = st_save({a: b.contiguous() for a, b in t.items()})
        (d / name).write_bytes(blob)
        typed_or_ok(load_dataset, "av-prepared", "train", ".", path=str(d),
                    audio_norm=data.draw(st.sampled_from(["raw_db", "standardize"])))


@settings(FUZZ, max_examples=n(60))
@given(data=st.data())
def test_fuzz_expert_buffer_files(data):
    from safetensors.torch import save as st_save

    from mmdistill.experts.buffers import ExpertBuffer

    man = {"format": "mmdistill.expert_buffer", "format_version": 1, "mode": "full", "epochs": 2,
           "branch_sizes": {"image": 3, "text": 2}, "encoder": {"image": {"width": 4}, "image_weights_file": None},
           "dataset": "tiny", "dataset_fingerprint": {"name": "tiny"}}
    blob = st_save({f"epoch_{e:03d}": torch.full((5,), float(e)) for e in range(3)})
    kind = data.draw(st.sampled_from(["manifest", "expert-bytes", "expert-tensors"]))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        mblob = json.dumps(man).encode()
        if kind == "manifest":
            mblob = data.draw(mutated_json(man))
        elif kind == "expert-bytes":
            blob = mutate(blob, data.draw)
        else:
            blob = st_save({f"epoch_{e:03d}": data.draw(st.sampled_from([torch.zeros(5), torch.zeros(4), torch.zeros(5, 1),
                                                                         torch.zeros(5, dtype=torch.int64), torch.tensor(1.0)]))
                            for e in range(data.draw(st.integers(0, 3)))})
        (d / "manifest.json").write_bytes(mblob)
        (d / "expert_000.safetensors").write_bytes(blob)
        buf = typed_or_ok(ExpertBuffer.open, d)
        if isinstance(buf, MMDistillError):
            return
        for attr in ("mode", "epochs", "sizes", "net", "encoder_path", "num_experts"):
            typed_or_ok(getattr, buf, attr)
        for e in range(buf.epochs + 1):
            out = typed_or_ok(buf.load, 0, e)
            if not isinstance(out, MMDistillError):
                assert out.shape == (5,)


@settings(FUZZ, max_examples=n(12))
@given(data=st.data())
def test_fuzz_run_checkpoint(data, tmp_path):
    """A corrupt checkpoint makes ``--resume`` fail with a typed error naming it, never a raw unpickling error."""
    from test_runloop import Toy, ToyConfig, _ds

    from mmdistill.distill.base import Budget, run

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        run(Toy(ToyConfig(iterations=4), _ds(), Budget(2, "ipc"), seed=0), d, checkpoint_every=1, progress=False, stop_after=2)
        ck = d / "checkpoint" / "state.pt"
        raw = ck.read_bytes()
        if data.draw(st.booleans()):
            ck.write_bytes(mutate(raw, data.draw))
        else:
            buf = io.BytesIO()
            torch.save(data.draw(st.sampled_from([{}, [], {"distiller": {}, "rng": {}, "next_it": "x"}, {"next_it": 1}])), buf)
            ck.write_bytes(buf.getvalue())
        out = typed_or_ok(run, Toy(ToyConfig(iterations=4), _ds(), Budget(2, "ipc"), seed=0), d, progress=False, resume=True)
        if isinstance(out, MMDistillError):
            assert "state.pt" in str(out)
