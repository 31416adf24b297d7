"""SyntheticSet: the distilled (or selected) set, saved as safetensors + a sha256 manifest.

Layout on disk (a run directory):

* ``synthetic.safetensors`` - keys ``tensor/<modality>``, ``labels``, ``extra/<name>``;
* ``manifest.json`` - format version, per-file and per-tensor sha256, shapes, dtypes, ``meta`` and the
  budget in stored floats and pair-equivalents.

Loading verifies the file hash and every tensor (sha256, finiteness) and raises
:class:`IntegrityError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from . import __version__
from .errors import DataError, IntegrityError
from .io import atomic_write_bytes, atomic_write_json, sha256_bytes

FORMAT_VERSION = 1
TENSORS_FILE = "synthetic.safetensors"
MANIFEST_FILE = "manifest.json"


def tensor_sha256(t: Tensor) -> str:
    t = t.detach().contiguous().cpu()
    h = hashlib.sha256()
    h.update(str(t.dtype).encode())
    h.update(str(tuple(t.shape)).encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class SyntheticSet:
    """Learned/selected tensors by modality, labels (hard (N,) or soft (N,C)), extras and meta.

    ``meta`` keys used by the library: ``method``, ``dataset``, ``dataset_params``, ``task``,
    ``budget`` ({"value", "unit"}), ``seed``, ``config``, ``floats_per_pair`` (of the real dataset),
    ``layout`` (factorisation, see ``mmdistill.factor``), ``source_indices`` for coresets.
    """

    tensors: dict[str, Tensor]
    labels: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    # ---------------------------------------------------------------- basics
    def __len__(self) -> int:
        return int(next(iter(self.tensors.values())).shape[0])

    @property
    def soft_labels(self) -> bool:
        return self.labels is not None and self.labels.is_floating_point() and self.labels.dim() == 2

    def stored_floats(self) -> int:
        n = sum(int(t.numel()) for t in self.tensors.values())
        n += sum(int(t.numel()) for t in self.extras.values())
        if self.soft_labels:
            n += int(self.labels.numel())
        return n

    def budget(self) -> dict[str, Any]:
        """Budget in stored floats and in pair-equivalents (stored floats / floats of one real pair)."""
        out: dict[str, Any] = {"stored_floats": self.stored_floats(), "stored_rows": len(self)}
        fpp = self.meta.get("floats_per_pair")
        if fpp:
            out["pair_equivalents"] = self.stored_floats() / float(fpp)
        if "budget" in self.meta:
            out["requested"] = self.meta["budget"]
        return out

    # ---------------------------------------------------------------- checks
    def validate(self, where: str = "synthetic set") -> None:
        if not self.tensors:
            raise IntegrityError(f"{where}: no tensors")
        counts = {k: int(t.shape[0]) for k, t in self.tensors.items()}
        if len(set(counts.values())) != 1:
            raise IntegrityError(f"{where}: modality row counts differ {counts}")
        n = next(iter(counts.values()))
        if self.labels is not None and int(self.labels.shape[0]) != n:
            raise IntegrityError(f"{where}: field 'labels' has {self.labels.shape[0]} rows for {n} pairs")
        for key, t in self._flat().items():
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise IntegrityError(f"{where}: field {key!r} contains NaN or inf")

    def check_compatible(self, pair_shape: dict[str, tuple[int, ...]], dataset: str = "dataset") -> None:
        """Raise DataError if the set's per-pair shapes do not fit the dataset's."""
        for mod, shape in pair_shape.items():
            if mod not in self.tensors:
                raise DataError(f"synthetic set has no modality {mod!r} required by {dataset} (has {sorted(self.tensors)})")
            got = tuple(self.tensors[mod].shape[1:])
            if got != tuple(shape):
                raise DataError(
                    f"synthetic set field 'tensor/{mod}' has per-pair shape {got}, but {dataset} expects {tuple(shape)}"
                )

    # ---------------------------------------------------------------- IO
    def _flat(self) -> dict[str, Tensor]:
        flat = {f"tensor/{k}": v for k, v in self.tensors.items()}
        if self.labels is not None:
            flat["labels"] = self.labels
        flat.update({f"extra/{k}": v for k, v in self.extras.items()})
        return {k: v.detach().contiguous().cpu() for k, v in flat.items()}

    def save(self, run_dir: str | Path) -> Path:
        """Write ``synthetic.safetensors`` then ``manifest.json``, both atomically."""
        run_dir = Path(run_dir)
        self.validate()
        flat = self._flat()
        blob = st_save(flat, metadata={"format": f"mmdistill.synthetic/{FORMAT_VERSION}"})  # one key: safetensors orders keys at random, so two would make the file bytes (and sha256) vary per process
        manifest = {
            "format": "mmdistill.synthetic",
            "format_version": FORMAT_VERSION,
            "code_version": __version__,
            "files": {TENSORS_FILE: sha256_bytes(blob)},
            "tensors": {
                k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""), "sha256": tensor_sha256(v)}
                for k, v in flat.items()
            },
            "budget": self.budget(),
            "meta": self.meta,
        }
        atomic_write_bytes(run_dir / TENSORS_FILE, blob)
        atomic_write_json(run_dir / MANIFEST_FILE, manifest)
        return run_dir

    @classmethod
    def load(cls, run_dir: str | Path) -> "SyntheticSet":
        run_dir = Path(run_dir)
        mpath, tpath = run_dir / MANIFEST_FILE, run_dir / TENSORS_FILE
        for p in (mpath, tpath):
            if not p.is_file():
                raise IntegrityError(f"{p}: missing; a run directory needs {TENSORS_FILE} and {MANIFEST_FILE}")
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise IntegrityError(f"{mpath}: not valid JSON ({e})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != "mmdistill.synthetic":
            raise IntegrityError(f"{mpath}: field 'format' is not 'mmdistill.synthetic'")
        for key in ("files", "tensors", "meta"):
            if not isinstance(manifest.get(key), dict):
                raise IntegrityError(f"{mpath}: field {key!r} missing or not a mapping")
        blob = tpath.read_bytes()
        want = manifest["files"].get(TENSORS_FILE)
        got = sha256_bytes(blob)
        if want != got:
            raise IntegrityError(f"{tpath}: sha256 mismatch (manifest {want}, file {got}); the file was modified or is corrupt")
        try:
            flat = st_load(blob)
        except Exception as e:  # safetensors raises its own error types
            raise IntegrityError(f"{tpath}: cannot parse safetensors ({e})") from None
        if set(flat) != set(manifest["tensors"]):
            raise IntegrityError(f"{tpath}: tensor keys {sorted(flat)} differ from manifest {sorted(manifest['tensors'])}")
        # safetensors returns the tensors in a per-process random order; the manifest keeps the saved order, and the
        # modality order decides how evaluation draws its nets' inits, so restore it (same results in every process)
        flat = {k: flat[k] for k in manifest["tensors"]}
        for k, t in flat.items():
            rec = manifest["tensors"][k]
            if not isinstance(rec, dict):
                raise IntegrityError(f"{mpath}: field 'tensors.{k}' is not a mapping (shape, dtype, sha256)")
            if list(t.shape) != rec.get("shape"):
                raise IntegrityError(f"{tpath}: field {k!r} has shape {list(t.shape)}, manifest says {rec.get('shape')}")
            if tensor_sha256(t) != rec.get("sha256"):
                raise IntegrityError(f"{tpath}: field {k!r} sha256 mismatch")
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise IntegrityError(f"{tpath}: field {k!r} contains NaN or inf")
        tensors = {k[len("tensor/"):]: v for k, v in flat.items() if k.startswith("tensor/")}
        extras = {k[len("extra/"):]: v for k, v in flat.items() if k.startswith("extra/")}
        out = cls(tensors=tensors, labels=flat.get("labels"), extras=extras, meta=manifest["meta"])
        out.validate(where=str(tpath))
        return out
