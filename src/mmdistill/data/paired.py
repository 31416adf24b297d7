"""PairedDataset: tensors by modality, labels, and caption<->image maps (DESIGN.md, core types).

Two tasks share one type:

* ``classification`` (audio-visual): ``tensors = {"audio": (N,1,F,T), "visual": (N,C,H,W)}`` and
  ``labels`` (N,). Row i of every modality is one pair.
* ``retrieval`` (image-text): ``tensors = {"image": (n_img,C,H,W), "text": (n_txt,d)}``,
  ``text_to_image`` (n_txt,) gives each caption's image, so several captions per image are natural.
  A training *pair* is one caption row: (image[text_to_image[j]], text[j]). ``labels`` (optional)
  are per image.

``pairing`` says what a pair's rows share: ``"instance"`` (the two modalities show the same item: an
image and its caption, a video frame and its soundtrack) or ``"label"`` (rows are paired by class only,
so within a class the modalities are independent, as in av-digits). Methods with sample-level
cross-modal terms read it (e.g. instance InfoNCE vs supervised contrastive).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from ..errors import DataError

Task = Literal["classification", "retrieval"]
Pairing = Literal["instance", "label"]
PAIRINGS: tuple[str, ...] = ("instance", "label")


@dataclass
class PairedDataset:
    name: str
    split: str
    task: Task
    tensors: dict[str, Tensor]
    labels: Tensor | None = None
    class_names: list[str] | None = None
    text_to_image: Tensor | None = None
    captions: list[str] | None = None
    extra_labels: dict[str, Tensor] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    pairing: Pairing = "instance"

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        where = f"dataset {self.name!r} split {self.split!r}"
        if not self.tensors:
            raise DataError(f"{where}: no modality tensors")
        if self.pairing not in PAIRINGS:
            raise DataError(f"{where}: pairing must be one of {', '.join(PAIRINGS)}, got {self.pairing!r}")
        for k, t in self.tensors.items():
            if not isinstance(t, Tensor):
                raise DataError(f"{where}: modality {k!r} is not a tensor")
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise DataError(f"{where}: modality {k!r} contains NaN or inf")
        if self.task == "classification":
            counts = {k: int(t.shape[0]) for k, t in self.tensors.items()}
            if len(set(counts.values())) != 1:
                raise DataError(f"{where}: mismatched modality counts {counts}; every modality needs one row per pair")
            n = next(iter(counts.values()))
            if self.labels is None:
                raise DataError(f"{where}: classification dataset without labels")
            if self.labels.shape[0] != n:
                raise DataError(f"{where}: {self.labels.shape[0]} labels for {n} pairs")
        elif self.task == "retrieval":
            if "image" not in self.tensors or "text" not in self.tensors:
                raise DataError(f"{where}: retrieval needs 'image' and 'text' tensors, has {sorted(self.tensors)}")
            if self.text_to_image is None:
                raise DataError(f"{where}: retrieval dataset without text_to_image map")
            n_img, n_txt = self.tensors["image"].shape[0], self.tensors["text"].shape[0]
            if self.text_to_image.shape[0] != n_txt:
                raise DataError(f"{where}: text_to_image has {self.text_to_image.shape[0]} rows for {n_txt} captions")
            if n_txt and (int(self.text_to_image.min()) < 0 or int(self.text_to_image.max()) >= n_img):
                raise DataError(f"{where}: text_to_image indexes outside the {n_img} images")
            if self.captions is not None and len(self.captions) != n_txt:
                raise DataError(f"{where}: {len(self.captions)} caption strings for {n_txt} text rows")
            if self.labels is not None and self.labels.shape[0] != n_img:
                raise DataError(f"{where}: {self.labels.shape[0]} labels for {n_img} images")
        else:
            raise DataError(f"{where}: unknown task {self.task!r}")

    # ------------------------------------------------------------------ views
    @property
    def modalities(self) -> list[str]:
        return list(self.tensors)

    @property
    def num_classes(self) -> int | None:
        if self.class_names is not None:
            return len(self.class_names)
        if self.labels is not None and self.labels.numel():
            return int(self.labels.max()) + 1
        return None

    def __len__(self) -> int:
        """Number of pairs (classification rows, or caption rows for retrieval)."""
        if self.task == "retrieval":
            return int(self.tensors["text"].shape[0])
        return int(next(iter(self.tensors.values())).shape[0])

    def pair_labels(self) -> Tensor | None:
        """Labels aligned with pairs (for retrieval: the label of each caption's image)."""
        if self.labels is None:
            return None
        if self.task == "retrieval":
            return self.labels[self.text_to_image]
        return self.labels

    def pairs(self, idx: Tensor | None = None) -> dict[str, Tensor]:
        """The pair rows ``idx`` as a dict of modality tensors aligned row by row."""
        if idx is None:
            idx = torch.arange(len(self))
        if self.task == "retrieval":
            return {"image": self.tensors["image"][self.text_to_image[idx]], "text": self.tensors["text"][idx]}
        return {k: t[idx] for k, t in self.tensors.items()}

    def indices_of_class(self, c: int) -> Tensor:
        lab = self.pair_labels()
        if lab is None:
            raise DataError(f"dataset {self.name!r} has no labels")
        return torch.nonzero(lab == c, as_tuple=False).flatten()

    def pair_shape(self) -> dict[str, tuple[int, ...]]:
        """Shape of one pair per modality (without the batch axis)."""
        if self.task == "retrieval":
            return {"image": tuple(self.tensors["image"].shape[1:]), "text": tuple(self.tensors["text"].shape[1:])}
        return {k: tuple(t.shape[1:]) for k, t in self.tensors.items()}

    def floats_per_pair(self) -> int:
        total = 0
        for shape in self.pair_shape().values():
            n = 1
            for s in shape:
                n *= s
            total += n
        return total

    def subset(self, idx: Tensor) -> "PairedDataset":
        """A classification-style subset of pair rows (retrieval: images re-indexed)."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        if self.task == "retrieval":
            img_idx = self.text_to_image[idx]
            uniq, inv = torch.unique(img_idx, return_inverse=True)
            return PairedDataset(
                name=self.name, split=self.split, task="retrieval",
                tensors={"image": self.tensors["image"][uniq], "text": self.tensors["text"][idx]},
                labels=None if self.labels is None else self.labels[uniq],
                class_names=self.class_names, text_to_image=inv,
                captions=None if self.captions is None else [self.captions[int(i)] for i in idx],
                extra_labels={k: v[uniq] for k, v in self.extra_labels.items()},
                meta=dict(self.meta), pairing=self.pairing,
            )
        return PairedDataset(
            name=self.name, split=self.split, task=self.task,
            tensors={k: t[idx] for k, t in self.tensors.items()},
            labels=None if self.labels is None else self.labels[idx],
            class_names=self.class_names,
            extra_labels={k: v[idx] for k, v in self.extra_labels.items()},
            meta=dict(self.meta), pairing=self.pairing,
        )

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "split": self.split, "task": self.task, "pairs": len(self), "pairing": self.pairing,
            "shapes": {k: list(t.shape) for k, t in self.tensors.items()},
        }
        if self.labels is not None:
            lab = self.pair_labels()
            counts = torch.bincount(lab, minlength=self.num_classes or 0).tolist()
            out["class_counts"] = counts
            out["num_classes"] = self.num_classes
        if self.task == "retrieval":
            out["images"] = int(self.tensors["image"].shape[0])
            out["captions"] = int(self.tensors["text"].shape[0])
        return out
