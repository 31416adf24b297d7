"""Expert trajectory buffers for image-text trajectory matching.

``train_experts(dataset, cfg, out_dir)`` trains ``cfg.num_experts`` experts on the real training pairs with
symmetric InfoNCE at a fixed temperature (``scale = exp(log_scale)``), plain SGD (lr 0.1, no momentum, as the
papers' buffers), and stores every expert's per-epoch flat parameter vectors (epochs 0..E) in one
safetensors file per expert (``expert_<k>.safetensors``, keys ``epoch_<e>``), each written atomically. A
``manifest.json`` records the modules, the parameter order, the dataset + data params + a fingerprint, the
encoders, the loss, seeds and epochs. Re-running skips finished experts (resume); a buffer whose manifest
describes another dataset or another configuration is refused with an error naming both.

Modes (``cfg.mode``):

* ``full``  - θ = image encoder + image projection + text head (MTT-VL, LoRS);
* ``heads`` - θ = image projection + text head over a frozen image encoder (RepBlend). Real image features
  are computed once, so these experts are cheap.

The image encoder at epoch 0 (``encoder_init``): ``pretrained`` = trained once on the real training set with
InfoNCE (our stand-in for the papers' ImageNet-pretrained NFNet; cached, and saved in the buffer as
``image_encoder.safetensors`` so evaluation can load it via ``image_encoder_weights``); ``file`` = a local
weights file (``encoder_weights``, for a paper-scale backbone); ``random`` = a fresh init per expert.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save as st_save, save_file
from torch import Tensor
from tqdm import tqdm

from ..data.paired import PairedDataset
from ..data.root import cache_dir
from ..parallel.context import is_main
from ..parallel.jobs import Job, main_first, run_jobs
from ..losses.contrastive import contrastive_logits, info_nce
from ..errors import ConfigError, DataError
from ..evaluate.augment import augment_modality
from ..io import atomic_write_bytes, atomic_write_json, atomic_write_with, sha256_file
from ..seed import derive_seed, generator, seed_everything
from ..train.loop import fit
from .model import FlatDualEncoder, Mode, VLNetConfig, build_model

FORMAT = "mmdistill.expert_buffer"
MANIFEST = "manifest.json"
ENCODER_FILE = "image_encoder.safetensors"


@dataclass
class ExpertConfig:
    """How expert trajectories are trained (defaults: the papers' buffer settings at CPU scale)."""

    mode: Mode = "full"  # "full" (MTT-VL, LoRS) or "heads" (RepBlend: projection heads over a frozen encoder)
    num_experts: int = 5  # papers: 20
    epochs: int = 5  # per-epoch snapshots 0..epochs are stored; papers: 10
    lr: float = 0.1  # SGD, as the papers' buffers (lr_teacher 0.1)
    momentum: float = 0.0  # papers: 0
    weight_decay: float = 0.0  # papers: 0
    batch_size: int = 128  # papers: 128
    augment: bool = False  # random translation of real images (full mode only; features are fixed in heads mode)
    seed: int = 0  # expert k uses derive_seed(seed, "expert", k)
    net: VLNetConfig = field(default_factory=VLNetConfig)
    encoder_init: Literal["pretrained", "file", "random"] = "pretrained"
    encoder_weights: str | None = None  # encoder_init="file": local safetensors state_dict of the image encoder
    encoder_epochs: int = 10  # encoder_init="pretrained": epochs of the one-off real-set training (AdamW)
    encoder_lr: float = 1e-3
    encoder_batch_size: int = 128

    def key(self, ds: PairedDataset) -> str:
        blob = json.dumps({"cfg": asdict(self), "data": dataset_fingerprint(ds), "v": 1}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def dataset_fingerprint(ds: PairedDataset) -> dict[str, Any]:
    """Identity of a training split: name, loader params, sizes and a cheap checksum of the tensors."""
    return {
        "name": ds.name, "split": ds.split, "params": ds.meta.get("params", {}),
        "images": int(ds.tensors["image"].shape[0]), "captions": int(ds.tensors["text"].shape[0]),
        "image_shape": list(ds.tensors["image"].shape[1:]), "text_dim": int(ds.tensors["text"].shape[1]),
        "checksum": round(float(ds.tensors["image"].double().sum() + ds.tensors["text"].double().sum()), 4),
    }


def default_buffer_dir(ds: PairedDataset, cfg: ExpertConfig) -> Path:
    """Cache location keyed by dataset fingerprint and expert config (shared by runs and benchmark cells)."""
    return cache_dir() / "experts" / f"{ds.name}-{cfg.mode}-{cfg.key(ds)}"


# ----------------------------------------------------------------------------------------------- training
def _check_retrieval(ds: PairedDataset) -> None:
    if ds.task != "retrieval":
        raise ConfigError(f"expert buffers are for image-text retrieval datasets; {ds.name!r} is {ds.task}")


def _batches(n: int, bs: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    bs = max(2, min(bs, n))
    for s in range(0, n - 1, bs):
        idx = perm[s:s + bs]
        if idx.numel() >= 2:
            yield idx


def pretrain_encoder(ds: PairedDataset, cfg: ExpertConfig, progress: bool = True, *, full: bool = False) -> Path:
    """Train the dual encoder once on the real set (AdamW, InfoNCE) and cache the image encoder's weights.

    ``full=True`` returns the cached state of the whole dual encoder (image encoder, image projection, text head)
    of the same training run instead (written beside the image encoder's file; an online proxy resets to it)."""
    _check_retrieval(ds)
    blob = json.dumps({"net": asdict(cfg.net), "data": dataset_fingerprint(ds), "epochs": cfg.encoder_epochs,
                       "lr": cfg.encoder_lr, "bs": cfg.encoder_batch_size, "seed": cfg.seed, "v": 1}, sort_keys=True)
    path = cache_dir() / "encoders" / f"{ds.name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}.safetensors"
    full_path = path.with_name(path.stem + "-dual.safetensors")
    want = full_path if full else path
    if want.is_file():
        return want
    seed = derive_seed(cfg.seed, "encoder")
    seed_everything(seed)
    gen = generator(seed)
    images, texts, t2i = ds.tensors["image"], ds.tensors["text"], ds.text_to_image
    model = build_model(cfg.net, tuple(images.shape[1:]), int(texts.shape[1]))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.encoder_lr, weight_decay=1e-4)

    def batch_loss(idx: Tensor) -> Tensor:
        return info_nce(model.logits(augment_modality("image", images[t2i[idx]], gen), texts[idx]))

    model.train()
    for _ in tqdm(range(cfg.encoder_epochs), desc="pretrain image encoder", disable=not progress, leave=False):
        fit(opt, _batches(len(ds), cfg.encoder_batch_size, gen), batch_loss)
    state = {k: v.detach().contiguous() for k, v in model.image_encoder.state_dict().items()}
    if not path.is_file():  # a full=True call after an earlier image-only one keeps the file buffers already copied
        atomic_write_with(path, lambda p: save_file(state, p, metadata={"format": "mmdistill.image_encoder"}))
    dual = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    atomic_write_with(full_path, lambda p: save_file(dual, p, metadata={"format": "mmdistill.dual_encoder"}))
    return want


def _encoder_source(ds: PairedDataset, cfg: ExpertConfig, progress: bool) -> Path | None:
    if cfg.encoder_init == "pretrained":
        return pretrain_encoder(ds, cfg, progress)
    if cfg.encoder_init == "file":
        if not cfg.encoder_weights:
            raise ConfigError("experts: encoder_init='file' needs encoder_weights (a local safetensors file)")
        p = Path(cfg.encoder_weights).expanduser()
        if not p.is_file():
            raise DataError(f"{p}: image encoder weights file not found (experts.encoder_weights)")
        return p
    if cfg.mode == "heads":
        raise ConfigError("experts: mode 'heads' needs a fixed image encoder (encoder_init 'pretrained' or 'file')")
    return None


def _manifest(ds: PairedDataset, cfg: ExpertConfig, flat: FlatDualEncoder, encoder_sha: str | None) -> dict[str, Any]:
    return {
        "format": FORMAT, "format_version": 1,
        "mode": cfg.mode, "modules": flat.modules,
        "branches": {"image": list(flat.branch_modules["image"]), "text": list(flat.branch_modules["text"])},
        "branch_sizes": {"image": flat.sizes[0], "text": flat.sizes[1]},
        "param_order": flat.param_order(),
        "dataset": ds.name, "data_params": ds.meta.get("params", {}), "dataset_fingerprint": dataset_fingerprint(ds),
        "encoder": {"image": asdict(cfg.net), "image_init": cfg.encoder_init, "image_weights_file": ENCODER_FILE if encoder_sha else None,
                    "image_weights_sha256": encoder_sha, "text": ds.meta.get("text_encoder", "frozen text vectors of the dataset")},
        "loss": {"name": "symmetric InfoNCE", "scale": "exp(log_scale)", "temperature": cfg.net.temperature},
        "optimizer": {"name": "sgd", "lr": cfg.lr, "momentum": cfg.momentum, "weight_decay": cfg.weight_decay,
                      "batch_size": cfg.batch_size, "augment": cfg.augment},
        "seed": cfg.seed, "epochs": cfg.epochs, "num_experts": cfg.num_experts,
        "config": asdict(cfg), "config_key": cfg.key(ds),
    }


def read_manifest(mpath: Path) -> dict[str, Any]:
    """A buffer's manifest, with the fields the loader relies on type-checked (DataError naming the field)."""
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{mpath}: not valid JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise DataError(f"{mpath}: field 'format' is not {FORMAT!r}")
    sizes, enc, epochs = m.get("branch_sizes"), m.get("encoder"), m.get("epochs")
    checks = {
        "mode": m.get("mode") in ("full", "heads"),
        "epochs": isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 1,
        "branch_sizes": isinstance(sizes, dict) and all(type(sizes.get(k)) is int and sizes[k] >= 0 for k in ("image", "text")),
        "encoder": isinstance(enc, dict) and isinstance(enc.get("image"), dict)
        and (enc.get("image_weights_file") is None or isinstance(enc.get("image_weights_file"), str)),
        "dataset_fingerprint": isinstance(m.get("dataset_fingerprint", {}), dict),
    }
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise DataError(f"{mpath}: field(s) {', '.join(map(repr, bad))} missing or of the wrong type; "
                        "not a manifest written by `mmdistill experts` (delete the directory and retrain)")
    return m


def _compatible_data(old: dict[str, Any], ds: PairedDataset, path: Path) -> None:
    if old.get("format") != FORMAT:
        raise ConfigError(f"{path}: not an expert buffer manifest (field 'format')")
    if old.get("dataset") != ds.name or old.get("dataset_fingerprint") != dataset_fingerprint(ds):
        raise ConfigError(
            f"{path}: this expert buffer was trained on dataset {old.get('dataset')!r} "
            f"(params {old.get('data_params')}), not {ds.name!r} (params {ds.meta.get('params', {})}); use another --out")


def _compatible(old: dict[str, Any], new: dict[str, Any], path: Path) -> None:
    for k in ("mode", "param_order", "config_key"):
        if old.get(k) != new[k]:
            raise ConfigError(f"{path}: field {k!r} differs from the requested expert configuration; use another --out "
                              f"or delete the directory")


def train_experts(ds: PairedDataset, cfg: ExpertConfig, out_dir: str | Path | None = None,
                  progress: bool = True) -> "ExpertBuffer":
    """Train (or finish) the buffer in ``out_dir`` (default: the cache path). Finished experts are skipped."""
    _check_retrieval(ds)
    if cfg.num_experts < 1 or cfg.epochs < 1:
        raise ConfigError("experts: num_experts and epochs must be >= 1")
    out = Path(out_dir) if out_dir else default_buffer_dir(ds, cfg)
    out.mkdir(parents=True, exist_ok=True)
    images, texts, t2i = ds.tensors["image"], ds.tensors["text"], ds.text_to_image
    mpath = out / MANIFEST
    if mpath.is_file():  # cheap data check first (before any encoder training)
        _compatible_data(read_manifest(mpath), ds, mpath)
    enc_src = main_first(lambda: _encoder_source(ds, cfg, progress), desc="experts: image encoder")  # trained once
    enc_state = load_file(str(enc_src)) if enc_src else None
    probe = build_model(cfg.net, tuple(images.shape[1:]), int(texts.shape[1]))
    manifest = _manifest(ds, cfg, FlatDualEncoder(probe, cfg.mode, cfg.net.temperature),
                         sha256_file(enc_src) if enc_src else None)
    if mpath.is_file():
        _compatible(read_manifest(mpath), manifest, mpath)
    if is_main():  # rank 0 writes the shared files
        if enc_src and not (out / ENCODER_FILE).is_file():
            atomic_write_with(out / ENCODER_FILE, lambda p: shutil.copyfile(enc_src, p))
        atomic_write_json(mpath, manifest)
    feats = None
    if cfg.mode == "heads":
        probe.image_encoder.load_state_dict(enc_state)
        probe.eval()
        with torch.no_grad():
            feats = torch.cat([probe.image_encoder(images[s:s + 256]) for s in range(0, images.shape[0], 256)])

    def train_one(k: int, fpath: Path) -> None:
        t0 = time.perf_counter()
        seed = derive_seed(cfg.seed, "expert", k)
        seed_everything(seed)
        gen = generator(seed)
        model = build_model(cfg.net, tuple(images.shape[1:]), int(texts.shape[1]))
        if enc_state is not None:
            model.image_encoder.load_state_dict(enc_state)
        flat = FlatDualEncoder(model, cfg.mode, cfg.net.temperature)
        params = [p for m in flat.modules for p in getattr(model, m).parameters()]
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        snaps = {"epoch_000": flat.flat().clone()}
        last: list[Tensor] = []  # the last step's loss, for the file's metadata

        def keep(_step: int, loss: Tensor) -> None:
            last[:] = [loss]

        def batch_loss(idx: Tensor) -> Tensor:
            if feats is not None:
                zi = model.image_head(feats[t2i[idx]])
            else:
                x = images[t2i[idx]]
                if cfg.augment:
                    x = augment_modality("image", x, gen)
                zi = model.image_head(model.image_encoder(x))
            return info_nce(contrastive_logits(zi, model.text_head(texts[idx]), flat.log_scale))

        model.train()
        for e in tqdm(range(cfg.epochs), desc=f"expert {k + 1}/{cfg.num_experts}", disable=not progress, leave=False):
            fit(opt, _batches(len(ds), cfg.batch_size, gen), batch_loss, after=keep)
            snaps[f"epoch_{e + 1:03d}"] = flat.flat().clone()
            if not torch.isfinite(snaps[f"epoch_{e + 1:03d}"]).all():
                raise ConfigError(f"expert {k} diverged at epoch {e + 1} (lower experts.lr)")
        blob = st_save({n: t.contiguous() for n, t in snaps.items()},
                       metadata={"format": FORMAT, "expert": str(k), "seed": str(seed),
                                 "final_loss": f"{float(last[-1].detach()):.6f}" if last else "nan", "wall_s": f"{time.perf_counter() - t0:.2f}"})
        atomic_write_bytes(fpath, blob)

    # one job per expert: rank r of W trains experts r, r+W, ...; a present file is finished (written atomically)
    jobs = [Job(f"expert_{k:03d}", (out / f"expert_{k:03d}.safetensors",),
                partial(train_one, k, out / f"expert_{k:03d}.safetensors")) for k in range(cfg.num_experts)]
    run_jobs(jobs, desc=f"experts {out}")
    return ExpertBuffer.open(out, ds)


# ------------------------------------------------------------------------------------------------ loading
class ExpertBuffer:
    """A trained buffer: lazily loads one expert's epoch-``e`` flat vector at a time."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.experts = sorted(path.glob("expert_*.safetensors"))

    @classmethod
    def open(cls, path: str | Path, ds: PairedDataset | None = None) -> "ExpertBuffer":
        path = Path(path)
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise DataError(f"{mpath}: missing; train the buffer with `mmdistill experts --dataset D --config FILE --out {path}`")
        manifest = read_manifest(mpath)
        buf = cls(path, manifest)
        if ds is not None:
            buf.check_dataset(ds)
        if not buf.experts:
            raise DataError(f"{path}: no finished expert files (expert_*.safetensors); run `mmdistill experts` to train them")
        return buf

    def check_dataset(self, ds: PairedDataset) -> None:
        fp = dataset_fingerprint(ds)
        m = self.manifest
        if m.get("dataset") != ds.name or m.get("dataset_fingerprint") != fp:
            raise ConfigError(
                f"{self.path / MANIFEST}: expert buffer was trained on dataset {m.get('dataset')!r} "
                f"(params {m.get('data_params')}, {m.get('dataset_fingerprint', {}).get('captions')} captions), "
                f"but the run uses {ds.name!r} (params {ds.meta.get('params', {})}, {fp['captions']} captions)")

    @property
    def mode(self) -> Mode:
        return self.manifest["mode"]

    @property
    def epochs(self) -> int:
        return int(self.manifest["epochs"])

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    @property
    def sizes(self) -> tuple[int, int]:
        b = self.manifest["branch_sizes"]
        return int(b["image"]), int(b["text"])

    @property
    def net(self) -> VLNetConfig:
        try:
            return VLNetConfig(**self.manifest["encoder"]["image"])
        except TypeError as e:
            raise DataError(f"{self.path / MANIFEST}: field 'encoder.image' is not a network config ({e})") from None

    @property
    def encoder_path(self) -> Path | None:
        f = self.manifest["encoder"].get("image_weights_file")
        return (self.path / f) if f else None

    def load(self, expert: int, epoch: int) -> torch.Tensor:
        if not 0 <= epoch <= self.epochs:
            raise ConfigError(f"expert buffer {self.path}: epoch {epoch} outside 0..{self.epochs}")
        path = self.experts[expert]
        try:
            with safe_open(str(path), framework="pt") as f:
                t = f.get_tensor(f"epoch_{epoch:03d}")
        except Exception as e:  # safetensors' own error types (header, truncation, missing key)
            raise DataError(f"{path}: unreadable expert file, field 'epoch_{epoch:03d}' ({type(e).__name__}: {e}); "
                            "delete it and rerun `mmdistill experts` to retrain it") from None
        if t.dim() != 1 or t.numel() != sum(self.sizes) or not t.is_floating_point():
            raise DataError(f"{path}: field 'epoch_{epoch:03d}' is {t.dtype} {tuple(t.shape)}, expected a float vector "
                            f"of {sum(self.sizes)} parameters (manifest 'branch_sizes')")
        return t


def ensure_buffer(ds: PairedDataset, cfg: ExpertConfig, path: str | Path | None = None, progress: bool = True) -> ExpertBuffer:
    """Open the buffer at ``path`` (or the cache path), training missing experts first."""
    p = Path(path) if path else default_buffer_dir(ds, cfg)
    if (p / MANIFEST).is_file() and len(list(p.glob("expert_*.safetensors"))) >= cfg.num_experts:
        return ExpertBuffer.open(p, ds)
    return train_experts(ds, cfg, p, progress=progress)
