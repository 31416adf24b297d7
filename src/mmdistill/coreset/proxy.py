"""One real training run that every feature-based coreset reads.

Trains the evaluation protocol's model on the full training set for a few epochs and records

* ``forgetting``: per pair, how often it went from correctly to incorrectly classified between two
  consecutive visits (Toneva et al. 2019); pairs never learned count as ``epochs`` (most forgettable);
* ``features``: L2-normalised embeddings at the end (AV: [audio; visual]; image-text: [image; text]
  in the joint space).

Classification correctness = fused (mean-softmax) prediction; image-text correctness = the pair is
top-1 both ways within its minibatch. Cached on disk keyed by dataset, data params, config and seed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from ..data.paired import PairedDataset
from ..data.root import cache_dir
from ..evaluate import classification, retrieval
from ..losses.contrastive import info_nce
from ..nets.dual_encoder import DualEncoder
from ..train.loop import epoch_batches, fit
from ..evaluate.augment import augment_modality
from ..io import atomic_write_with
from ..seed import generator, seed_everything


@dataclass
class ProxyConfig:
    epochs: int = 4
    batch_size: int = 64
    lr: float = 1e-3
    width: int = 32
    depth: int = 3


def _key(ds: PairedDataset, cfg: ProxyConfig, seed: int) -> str:
    first = next(iter(ds.tensors.values()))
    blob = json.dumps({"ds": ds.name, "params": ds.meta.get("params", {}), "n": len(ds), "sum": float(first.double().sum()),
                       "cfg": asdict(cfg), "seed": seed, "v": 1}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def proxy_stats(ds: PairedDataset, cfg: ProxyConfig, seed: int, progress: bool = True) -> dict[str, torch.Tensor]:
    path = cache_dir() / "proxy" / f"{_key(ds, cfg, seed)}.safetensors"
    if path.is_file():
        return load_file(str(path))
    out = _train_classification(ds, cfg, seed, progress) if ds.task == "classification" else _train_retrieval(ds, cfg, seed, progress)
    atomic_write_with(path, lambda p: save_file(out, p))
    return out


def _forgetting(prev: torch.Tensor, correct_now: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor, ever: torch.Tensor) -> None:
    was = prev[idx]
    counts[idx] += (was & ~correct_now).long()
    prev[idx] = correct_now
    ever[idx] |= correct_now


def _train_classification(ds: PairedDataset, cfg: ProxyConfig, seed: int, progress: bool) -> dict[str, torch.Tensor]:
    seed_everything(seed)
    gen = generator(seed)
    proto = classification.ClassificationProtocol(width=cfg.width, depth=cfg.depth)
    data = ds.pairs()
    y = ds.pair_labels()
    model = classification.AVClassifier(proto, {m: tuple(x.shape[1:]) for m, x in data.items()}, ds.num_classes or int(y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    n = len(ds)
    prev = torch.zeros(n, dtype=torch.bool)
    ever = torch.zeros(n, dtype=torch.bool)
    counts = torch.zeros(n, dtype=torch.long)
    model.train()
    steps = cfg.epochs * -(-n // cfg.batch_size)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        batch = {m: augment_modality(m, x[idx], gen) for m, x in data.items()}
        out = model(batch)
        loss = sum(F.cross_entropy(z, y[idx]) for z in out.values())
        with torch.no_grad():  # forgetting events (Toneva et al., ICLR 2019): correct -> incorrect between visits
            fused = sum(F.softmax(z, 1) for z in out.values())
            _forgetting(prev, fused.argmax(1) == y[idx], idx, counts, ever)
        return loss

    fit(opt, tqdm(epoch_batches(n, cfg.batch_size, cfg.epochs, gen), total=steps, desc="proxy run",
                  disable=not progress, leave=False), batch_loss)
    counts[~ever] = cfg.epochs
    model.eval()
    feats = []
    with torch.no_grad():
        for s in range(0, n, 256):
            parts = [F.normalize(model.encoders[m].embed(x[s:s + 256]), dim=1) for m, x in data.items()]
            feats.append(torch.cat(parts, 1))
    return {"features": torch.cat(feats).float().contiguous(), "forgetting": counts}


def _train_retrieval(ds: PairedDataset, cfg: ProxyConfig, seed: int, progress: bool) -> dict[str, torch.Tensor]:
    seed_everything(seed)
    gen = generator(seed)
    proto = retrieval.RetrievalProtocol(width=cfg.width, depth=cfg.depth)
    images, texts = ds.tensors["image"], ds.tensors["text"]
    t2i = ds.text_to_image
    model = DualEncoder(proto, tuple(images.shape[1:]), int(texts.shape[1]))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    n = len(ds)
    bs = max(cfg.batch_size, 2)
    prev = torch.zeros(n, dtype=torch.bool)
    ever = torch.zeros(n, dtype=torch.bool)
    counts = torch.zeros(n, dtype=torch.long)
    model.train()
    steps = cfg.epochs * -(-n // bs)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        x = augment_modality("image", images[t2i[idx]], gen)
        logits = model.logits(x, texts[idx])
        loss = info_nce(logits)
        with torch.no_grad():
            ar = torch.arange(idx.numel())
            _forgetting(prev, (logits.argmax(1) == ar) & (logits.argmax(0) == ar), idx, counts, ever)
        return loss

    fit(opt, tqdm(epoch_batches(n, bs, cfg.epochs, gen), total=steps, desc="proxy run", disable=not progress,
                  leave=False), batch_loss)
    counts[~ever] = cfg.epochs
    model.eval()
    with torch.no_grad():
        zi = torch.cat([model.encode_image(images[s:s + 256]) for s in range(0, images.shape[0], 256)])
        zt = torch.cat([model.encode_text(texts[s:s + 1024]) for s in range(0, n, 1024)])
    feats = torch.cat([zi[t2i], zt], 1)
    return {"features": feats.float().contiguous(), "forgetting": counts}
