"""DAVDD's encoder bank and decoupler bank (Decoupled Audio-Visual Dataset Distillation, arXiv 2511.17890).

The paper keeps M frozen (audio, visual) encoder pairs pretrained on the real data (M = 40 in its experiments)
and, per pair, a lightweight decoupler: a 2-layer MLP per modality that projects the encoder output into a
**common** space; the encoder's **raw output is the private representation** (there is no private head).

* **Encoder pairs.** ``num_seeds`` independent runs, each training an audio and a visual encoder jointly with
  one linear head per modality (CE_a + CE_v, Adam, the evaluation protocol's train-time augmentation) and
  snapshotting at ``snapshot_epochs``: M = num_seeds × len(snapshot_epochs) pairs. The paper says "diverse" and
  "pretrained on the full dataset"; seeds × training snapshots is our reading [unverified].
  ``pretrained=False`` keeps the encoders at their random init (epoch 0): DAVDD's random-bank ablation.
* **Decouplers** (per pair): ``common[m]`` = Linear(d_enc→hidden) → ReLU → Linear(hidden→dim), trained with the
  encoders frozen on the real training features so that audio and visual common features agree. The objective
  follows the data's pairing (:attr:`DecouplerConfig.objective`): ``"instance"`` - symmetric InfoNCE, row i of
  audio with row i of visual (paired recordings of one item); ``"label"`` - cross-modal supervised contrastive,
  every same-class pair a positive (label-only pairing has no instance correspondence). The paper's decoupler
  loss is not given in the available text; both are our reading [unverified].
* **Cache.** ``cache_dir()/banks/<key>/`` (or ``BankConfig.path``): ``pair_KKK.safetensors`` (one file per
  pair, keys ``audio.*`` / ``visual.*``), ``decoupler_<dkey>_KKK.safetensors`` and ``manifest.json``
  naming dataset, data params, a sha256 fingerprint of the training tensors, the encoder arch, bank
  config, every finished file with its sha256, and the wall seconds spent training each part. Every file is
  written atomically and the manifest is rewritten after each finished pair, so a killed run resumes and skips
  finished pairs. Loading a bank whose manifest names another dataset / data raises :class:`IntegrityError`;
  another arch or bank config raises :class:`ConfigError`. :meth:`EncoderBank.report` gives the training time
  and storage.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ..data.paired import PairedDataset
from ..data.root import cache_dir
from ..parallel.context import context as dist_context
from ..parallel.jobs import Job, run_jobs
from ..errors import ConfigError, IntegrityError
from ..evaluate.augment import augment_modality
from ..losses.contrastive import info_nce as info_nce_logits
from ..io import atomic_write_json, atomic_write_with, sha256_file
from ..nets import create_net
from ..seed import derive_seed, generator, seed_everything
from ..train.loop import epoch_batches, fit

MODALITIES = ("audio", "visual")
MANIFEST = "manifest.json"
FORMAT = "mmdistill.av-bank"


@dataclass
class BankConfig:
    """Encoder bank. The paper uses M = 40 pairs; our default 8 seeds × 5 snapshots = 40 (the split [unverified])."""

    num_seeds: int = 8  # [unverified] diversity by seeds ...
    snapshot_epochs: list[int] = field(default_factory=lambda: [2, 4, 6, 8, 10])  # [unverified] ... x training snapshots
    pretrained: bool = True  # False: random-init encoders (DAVDD's random-bank ablation)
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0  # the bank is shared by all distillation seeds (trained once)
    path: str | None = None  # explicit bank directory; default cache_dir()/banks/<key>

    @property
    def size(self) -> int:
        return self.num_seeds * (len(self.snapshot_epochs) if self.pretrained else 1)


@dataclass
class DecouplerConfig:
    """The common-space MLP per pair and modality (paper: a 2-layer MLP; sizes and training [unverified])."""

    hidden: int = 1024  # [unverified] h
    dim: int = 256  # [unverified] d
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 256
    tau: float = 0.07  # [unverified] contrastive temperature
    # "instance": symmetric InfoNCE (row i of audio ↔ row i of visual); "label": cross-modal supervised contrastive
    # (same class = positive). DAVDD sets it from the dataset's ``pairing``.
    objective: Literal["instance", "label"] = "instance"


def mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(), nn.Linear(hidden, d_out))


class Decoupler(nn.Module):
    """``common[m]``: the 2-layer MLP per modality mapping the frozen encoder's output into the common space.

    :meth:`common_features` returns them L2-normalised (the space the contrastive objective shapes). The private
    representation is the encoder output itself, so the decoupler holds no private head (arXiv 2511.17890).
    """

    def __init__(self, feat_dims: dict[str, int], cfg: DecouplerConfig, num_classes: int = 0) -> None:
        super().__init__()
        self.common = nn.ModuleDict({m: mlp(d, cfg.hidden, cfg.dim) for m, d in feat_dims.items()})

    def common_features(self, m: str, f: Tensor) -> Tensor:
        return F.normalize(self.common[m](f), dim=1)


def info_nce(za: Tensor, zv: Tensor, tau: float) -> Tensor:
    """Symmetric InfoNCE between row-aligned (n, d) features: ½(CE(A→V) + CE(V→A)), rows L2-normalised.

    The sample-level L_A→V / L_V→A of DAVDD (arXiv 2511.17890, Eq. 24 and its symmetric counterpart)."""
    za, zv = F.normalize(za, dim=1), F.normalize(zv, dim=1)
    return info_nce_logits(za @ zv.t() / tau)


def sup_con(za: Tensor, zv: Tensor, y: Tensor, tau: float) -> Tensor:
    """Cross-modal supervised contrastive loss: InfoNCE where every same-label (audio, visual) pair is a positive.

    Row i's loss is −(1/|P_i|) Σ_{j∈P_i} log softmax_j(z_a,i · z_v,j / τ), P_i = {j : y_j = y_i}; symmetrised over
    A→V and V→A. With all labels distinct it equals :func:`info_nce`. For label-paired data, where audio i and
    visual i share only their class, InfoNCE would push same-class pairs apart.
    """
    za, zv = F.normalize(za, dim=1), F.normalize(zv, dim=1)
    logits = za @ zv.t() / tau
    pos = (y[:, None] == y[None, :]).to(logits.dtype)
    w = pos / pos.sum(1, keepdim=True)
    return 0.5 * (-(w * F.log_softmax(logits, 1)).sum(1).mean() - (w.t() * F.log_softmax(logits.t(), 1)).sum(1).mean())


def cross_modal_contrastive(za: Tensor, zv: Tensor, y: Tensor, tau: float, objective: str) -> Tensor:
    """:func:`info_nce` for ``objective="instance"``, :func:`sup_con` for ``"label"``."""
    if objective == "instance":
        return info_nce(za, zv, tau)
    if objective == "label":
        return sup_con(za, zv, y, tau)
    raise ConfigError(f"contrastive objective must be 'instance' or 'label', got {objective!r}")


def decoupler_loss(dec: "Decoupler", feats: dict[str, Tensor], y: Tensor, cfg: DecouplerConfig) -> tuple[Tensor, dict[str, float]]:
    """Training loss of a decoupler on row-aligned real features: the cross-modal contrastive loss of its
    common features, InfoNCE or supervised-contrastive by ``cfg.objective`` [unverified]."""
    loss = cross_modal_contrastive(dec.common["audio"](feats["audio"]), dec.common["visual"](feats["visual"]), y,
                                   cfg.tau, cfg.objective)
    return loss, {"contrastive": float(loss.detach())}


# ---------------------------------------------------------------------------------------------- keys


def data_fingerprint(ds: PairedDataset) -> str:
    h = hashlib.sha256()
    for m in sorted(ds.tensors):
        t = ds.tensors[m].detach().contiguous().cpu()
        h.update(m.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    if ds.labels is not None:
        h.update(ds.labels.contiguous().cpu().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _bank_desc(net: Any, cfg: BankConfig) -> dict[str, Any]:
    b = asdict(cfg)
    b.pop("path", None)
    return {"net": asdict(net), "bank": b}


def bank_key(ds: PairedDataset, net: Any, cfg: BankConfig) -> str:
    blob = json.dumps({"dataset": ds.name, "params": ds.meta.get("params", {}), "fp": data_fingerprint(ds),
                       **_bank_desc(net, cfg), "v": 1}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def decoupler_key(cfg: DecouplerConfig) -> str:
    return hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------- bank


class EncoderBank:
    """Trains (once), caches and loads the K encoder pairs and their decouplers for one dataset."""

    def __init__(self, ds: PairedDataset, net: Any, cfg: BankConfig, device: str = "cpu", progress: bool = False) -> None:
        self.ds, self.net, self.cfg = ds, net, cfg
        self.device = torch.device(device)
        self.progress = progress
        self.fingerprint = data_fingerprint(ds)
        self.dir = Path(cfg.path).expanduser() if cfg.path else cache_dir() / "banks" / bank_key(ds, net, cfg)
        self.shapes = {m: tuple(ds.tensors[m].shape[1:]) for m in MODALITIES}
        self.num_classes = ds.num_classes or int(ds.labels.max()) + 1  # type: ignore[union-attr]

    # -------------------------------------------------------------- manifest
    def _expected(self) -> dict[str, Any]:
        return {"format": FORMAT, "dataset": self.ds.name, "data_params": self.ds.meta.get("params", {}),
                "data_fingerprint": self.fingerprint, **_bank_desc(self.net, self.cfg)}

    def read_manifest(self) -> dict[str, Any]:
        """The manifest (created if absent); raises on a bank trained on other data or with another config."""
        p = self.dir / MANIFEST
        exp = self._expected()
        if not p.is_file():
            return {**exp, "pairs": {}, "decouplers": {}}
        try:
            man = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise IntegrityError(f"{p}: not valid JSON ({e})") from None
        if man.get("format") != FORMAT:
            raise IntegrityError(f"{p}: field 'format' is {man.get('format')!r}, expected {FORMAT!r}")
        for k in ("dataset", "data_params", "data_fingerprint"):
            if json.dumps(man.get(k), sort_keys=True, default=str) != json.dumps(exp[k], sort_keys=True, default=str):
                raise IntegrityError(
                    f"{p}: encoder bank was trained on dataset {man.get('dataset')!r} (params {man.get('data_params')}, "
                    f"fingerprint {str(man.get('data_fingerprint'))[:12]}), not on {exp['dataset']!r} (params "
                    f"{exp['data_params']}, fingerprint {exp['data_fingerprint'][:12]}); field {k!r} differs. Use a "
                    f"bank trained on this dataset (unset bank.path to use the default cache location).")
        for k in ("net", "bank"):
            if json.dumps(man.get(k), sort_keys=True) != json.dumps(exp[k], sort_keys=True):
                raise ConfigError(f"{p}: field {k!r} of the bank manifest ({man.get(k)}) differs from the config ({exp[k]})")
        man.setdefault("pairs", {})
        man.setdefault("decouplers", {})
        return man

    def _write_manifest(self, man: dict[str, Any]) -> None:
        atomic_write_json(self.dir / MANIFEST, man)

    def _valid(self, rec: dict[str, Any] | None) -> bool:
        if not rec:
            return False
        f = self.dir / rec["file"]
        return f.is_file() and sha256_file(f) == rec.get("sha256")

    # -------------------------------------------------------------- encoders
    def new_encoders(self) -> nn.ModuleDict:
        return nn.ModuleDict({m: create_net(self.net.arch, self.shapes[m], num_classes=0, **self.net.kwargs(m))
                              for m in MODALITIES})

    def pair_plan(self) -> list[tuple[int, int]]:
        """(seed index, epoch) of each pair k."""
        eps = list(self.cfg.snapshot_epochs) if self.cfg.pretrained else [0]
        return [(s, e) for s in range(self.cfg.num_seeds) for e in eps]

    def ensure(self) -> dict[str, Any]:
        """Train whatever pairs are missing; return the manifest.

        One job per bank seed (its snapshot epochs are one training run), through :func:`mmdistill.parallel.jobs.run_jobs`:
        under ``torchrun`` rank r trains seeds r, r+W, …; rank 0 then records every finished pair in the manifest.
        A pair is finished when its manifest record verifies, or - not yet recorded,
        e.g. written by another rank or a killed run - when its (atomically written) file exists.
        """
        if self.cfg.num_seeds < 1 or (self.cfg.pretrained and not self.cfg.snapshot_epochs):
            raise ConfigError("bank: num_seeds must be >= 1 and snapshot_epochs non-empty")
        self.dir.mkdir(parents=True, exist_ok=True)
        man = self.read_manifest()
        plan = self.pair_plan()
        jobs = []
        for s in range(self.cfg.num_seeds):
            ks = [k for k, (si, _) in enumerate(plan) if si == s]
            jobs.append(Job(f"bank seed {s}", tuple(self.dir / self._pair_name(k) for k in ks),
                            partial(self._train_seed, s, {plan[k][1]: k for k in ks}, man),
                            partial(self._seed_finished, man, ks)))

        t0 = time.perf_counter()
        todo = not all(self._valid(man["pairs"].get(str(k))) for k in range(len(plan)))

        def gather() -> dict[str, Any]:
            fresh = self.read_manifest()
            changed = not (self.dir / MANIFEST).is_file()
            if todo:  # some pairs were trained by this call: record its wall time
                fresh.setdefault("train_seconds", {})["encoders"] = round(time.perf_counter() - t0, 3)
                changed = True
            for k, (si, ep) in enumerate(plan):
                if not self._valid(fresh["pairs"].get(str(k))):
                    f = self.dir / self._pair_name(k)
                    fresh["pairs"][str(k)] = {"file": f.name, "seed_index": si, "epoch": ep, "sha256": sha256_file(f)}
                    changed = True
            if changed:
                self._write_manifest(fresh)
            return fresh

        return run_jobs(jobs, gather, desc=f"bank {self.dir}").value  # type: ignore[return-value]

    @staticmethod
    def _pair_name(k: int) -> str:
        return f"pair_{k:03d}.safetensors"

    def _finished(self, records: dict[str, Any], name: str, k: int) -> bool:
        rec = records.get(str(k))
        return self._valid(rec) if rec else (self.dir / name).is_file()

    def _seed_finished(self, man: dict[str, Any], ks: list[int]) -> bool:
        return all(self._finished(man["pairs"], self._pair_name(k), k) for k in ks)

    def _save_pair(self, k: int, enc: nn.ModuleDict, seed_idx: int, epoch: int, man: dict[str, Any]) -> None:
        name = self._pair_name(k)
        sd = {f"{m}.{n}": t.detach().cpu().contiguous().clone() for m in MODALITIES for n, t in enc[m].state_dict().items()}
        atomic_write_with(self.dir / name, lambda p: save_file(sd, p))
        man["pairs"][str(k)] = {"file": name, "seed_index": seed_idx, "epoch": epoch, "sha256": sha256_file(self.dir / name)}
        if not dist_context().distributed:  # one process: record each pair at once; otherwise rank 0 gathers
            self._write_manifest(man)

    def _train_seed(self, s: int, snaps: dict[int, int], man: dict[str, Any]) -> None:
        seed = derive_seed(self.cfg.seed, "bank", s)
        seed_everything(seed)
        gen = generator(seed)
        enc = self.new_encoders().to(self.device)
        if 0 in snaps:
            self._save_pair(snaps[0], enc, s, 0, man)
        last = max(snaps)
        if last == 0:
            return
        heads = nn.ModuleDict({m: nn.Linear(enc[m].feat_dim, self.num_classes) for m in MODALITIES}).to(self.device)
        opt = torch.optim.Adam(list(enc.parameters()) + list(heads.parameters()), lr=self.cfg.lr)
        x = {m: self.ds.tensors[m] for m in MODALITIES}
        y = self.ds.labels
        n = len(self.ds)
        bs = min(self.cfg.batch_size, n)
        def batch_loss(idx: Tensor) -> Tensor:
            return sum(F.cross_entropy(heads[m](enc[m].embed(augment_modality(m, x[m][idx].float(), gen).to(self.device))),
                                       y[idx].to(self.device)) for m in MODALITIES)  # type: ignore[index,return-value]

        enc.train()
        for ep in range(1, last + 1):
            fit(opt, epoch_batches(n, bs, 1, gen, drop_last=True), batch_loss)
            if ep in snaps:
                self._save_pair(snaps[ep], enc, s, ep, man)

    def load_encoders(self, k: int) -> nn.ModuleDict:
        man = self.read_manifest()
        rec = man["pairs"].get(str(k))
        if not self._valid(rec):
            raise IntegrityError(f"{self.dir}: encoder pair {k} missing or its sha256 does not match the manifest")
        sd = load_file(str(self.dir / rec["file"]))  # type: ignore[index]
        enc = self.new_encoders()
        for m in MODALITIES:
            enc[m].load_state_dict({n[len(m) + 1:]: t for n, t in sd.items() if n.startswith(m + ".")})
        enc.eval()
        for p in enc.parameters():
            p.requires_grad_(False)
        return enc.to(self.device)

    # -------------------------------------------------------------- decouplers
    @torch.no_grad()
    def features(self, enc: nn.ModuleDict) -> dict[str, Tensor]:
        out = {}
        for m in MODALITIES:
            x = self.ds.tensors[m]
            out[m] = torch.cat([enc[m].embed(x[s:s + 256].float().to(self.device)) for s in range(0, x.shape[0], 256)]).cpu()
        return out

    def ensure_decouplers(self, dcfg: DecouplerConfig) -> list[Decoupler]:
        """Train the missing decouplers (one job per pair, see :meth:`ensure`) and return all K, frozen."""
        man = self.ensure()
        dkey = decoupler_key(dcfg)
        records = man["decouplers"].get(dkey, {}).get("pairs", {})
        names = [f"decoupler_{dkey}_{k:03d}.safetensors" for k in range(self.cfg.size)]

        def train(k: int) -> None:
            enc = self.load_encoders(k)
            seed_everything(derive_seed(self.cfg.seed, "decoupler", k))  # the init too depends on k only, not on history
            dec = Decoupler({m: int(enc[m].feat_dim) for m in MODALITIES}, dcfg, self.num_classes)
            self._train_decoupler(dec, enc, dcfg, derive_seed(self.cfg.seed, "decoupler", k))
            sd = {n: t.detach().cpu().contiguous().clone() for n, t in dec.state_dict().items()}
            atomic_write_with(self.dir / names[k], lambda p: save_file(sd, p))

        t0 = time.perf_counter()
        todo = not all(self._valid(records.get(str(k))) for k in range(len(names)))

        def gather() -> dict[str, Any]:
            fresh = self.read_manifest()
            entry = fresh["decouplers"].setdefault(dkey, {"config": asdict(dcfg), "pairs": {}})
            changed = False
            if todo:  # some decouplers were trained by this call: record its wall time
                entry["train_seconds"] = round(time.perf_counter() - t0, 3)
                changed = True
            for k, name in enumerate(names):
                if not self._valid(entry["pairs"].get(str(k))):
                    entry["pairs"][str(k)] = {"file": name, "sha256": sha256_file(self.dir / name)}
                    changed = True
            if changed:
                self._write_manifest(fresh)
            return fresh

        jobs = [Job(f"decoupler {dkey} {k}", (self.dir / names[k],), partial(train, k),
                    partial(self._finished, records, names[k], k)) for k in range(self.cfg.size)]
        man = run_jobs(jobs, gather, desc=f"decouplers {self.dir}").value  # type: ignore[assignment]
        out = []
        for k in range(self.cfg.size):
            rec = man["decouplers"][dkey]["pairs"][str(k)]
            if not self._valid(rec):
                raise IntegrityError(f"{self.dir}: decoupler {k} missing or its sha256 does not match the manifest")
            enc = self.load_encoders(k)
            dec = Decoupler({m: int(enc[m].feat_dim) for m in MODALITIES}, dcfg, self.num_classes)
            dec.load_state_dict(load_file(str(self.dir / rec["file"])))
            dec.eval()
            for p in dec.parameters():
                p.requires_grad_(False)
            out.append(dec.to(self.device))
        return out

    def report(self, dcfg: DecouplerConfig | None = None) -> dict[str, Any]:
        """Bank cost: pairs, wall seconds spent training the encoders (and the decouplers of ``dcfg``) when they
        were built, and storage in bytes (encoder files; decoupler files of ``dcfg``)."""
        man = self.read_manifest()
        enc_bytes = sum((self.dir / r["file"]).stat().st_size for r in man["pairs"].values() if (self.dir / r["file"]).is_file())
        out: dict[str, Any] = {"pairs": len(man["pairs"]), "num_seeds": self.cfg.num_seeds,
                               "snapshot_epochs": list(self.cfg.snapshot_epochs), "pretrained": self.cfg.pretrained,
                               "encoders_train_s": man.get("train_seconds", {}).get("encoders"),
                               "encoders_bytes": enc_bytes}
        if dcfg is not None:
            entry = man["decouplers"].get(decoupler_key(dcfg), {})
            out["decouplers_train_s"] = entry.get("train_seconds")
            out["decouplers_bytes"] = sum((self.dir / r["file"]).stat().st_size for r in entry.get("pairs", {}).values()
                                          if (self.dir / r["file"]).is_file())
        return out

    def _train_decoupler(self, dec: Decoupler, enc: nn.ModuleDict, cfg: DecouplerConfig, seed: int) -> dict[str, float]:
        seed_everything(seed)
        gen = generator(seed)
        feats = self.features(enc)
        y = self.ds.labels
        n = int(y.shape[0])  # type: ignore[union-attr]
        bs = min(cfg.batch_size, n)
        dec.train()
        opt = torch.optim.Adam(dec.parameters(), lr=cfg.lr)
        last: dict[str, float] = {}

        def batch_loss(idx: Tensor) -> Tensor:
            loss, parts = decoupler_loss(dec, {m: feats[m][idx] for m in MODALITIES}, y[idx], cfg)  # type: ignore[index]
            last.update(parts)
            return loss

        fit(opt, epoch_batches(n, bs, cfg.epochs, gen, drop_last=True), batch_loss)
        return last
