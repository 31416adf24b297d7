"""A paired split seen from two modalities: the batch dict the KD trainer feeds to teacher and student.

Classification sets (av-digits): row i of every modality is one pair, so student row i's teacher partner
is row i. Retrieval sets (emoji): ``image`` rows are images, ``text`` rows are captions; an image's
partners are its captions (one is drawn at random per step), a caption's partner is its image. Labels:
the dataset's labels (emoji: the image's group) or ``extra_labels[label]``; captions take their image's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.paired import PairedDataset
from ..errors import ConfigError


@dataclass
class ModalityView:
    x_student: Tensor
    y_student: Tensor
    x_teacher: Tensor
    y_teacher: Tensor
    ptr: Tensor  # (N_s + 1,) CSR offsets into idx
    idx: Tensor  # teacher rows of each student row

    def sample_partners(self, rows: Tensor, gen: torch.Generator) -> Tensor:
        start, count = self.ptr[rows], self.ptr[rows + 1] - self.ptr[rows]
        off = (torch.rand(rows.shape[0], generator=gen) * count).long().clamp_max(count - 1)
        return self.idx[start + off]

    def first_partners(self, rows: Tensor) -> Tensor:
        return self.idx[self.ptr[rows]]

    def batch(self, rows: Tensor, gen: torch.Generator | None, student: str, teacher: str) -> dict[str, Tensor]:
        """``{student: x, teacher: x, "label": y, "index": rows, "teacher_index": partner rows}``."""
        t_rows = self.sample_partners(rows, gen) if gen is not None else self.first_partners(rows)
        return {student: self.x_student[rows], teacher: self.x_teacher[t_rows], "label": self.y_student[rows],
                "index": rows, "teacher_index": t_rows}


def _labels(ds: PairedDataset, label: str) -> Tensor:
    if label == "label":
        if ds.labels is None:
            raise ConfigError(f"dataset {ds.name!r} has no labels; KD needs class labels")
        return ds.labels.long()
    if label not in ds.extra_labels:
        raise ConfigError(f"dataset {ds.name!r}: label {label!r} is not one of label, {', '.join(ds.extra_labels)}")
    return ds.extra_labels[label].long()


def _csr(groups: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Rows grouped by owner: groups[j] = owner of row j -> (ptr (n+1,), idx)."""
    order = torch.argsort(groups, stable=True)
    counts = torch.bincount(groups, minlength=n)
    if (counts == 0).any():
        raise ConfigError(f"{int((counts == 0).sum())} rows have no partner in the other modality")
    ptr = torch.zeros(n + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(counts, 0)
    return ptr, order


def make_view(ds: PairedDataset, student: str, teacher: str, label: str = "label") -> ModalityView:
    if student == teacher:
        raise ConfigError(f"teacher and student modality are both {student!r}; cross-modal KD needs two")
    for m in (student, teacher):
        if m not in ds.tensors:
            raise ConfigError(f"dataset {ds.name!r} has no modality {m!r}; it has {', '.join(ds.tensors)}")
    y = _labels(ds, label)
    if ds.task == "classification":
        n = len(ds)
        ar = torch.arange(n)
        return ModalityView(ds.tensors[student], y, ds.tensors[teacher], y, torch.arange(n + 1), ar)
    t2i = ds.text_to_image.long()  # type: ignore[union-attr]
    y_img, y_txt = y, y[t2i]
    if student == "image":
        n = int(ds.tensors["image"].shape[0])
        ptr, idx = _csr(t2i, n)
        return ModalityView(ds.tensors["image"], y_img, ds.tensors["text"], y_txt, ptr, idx)
    n = int(ds.tensors["text"].shape[0])
    return ModalityView(ds.tensors["text"], y_txt, ds.tensors["image"], y_img, torch.arange(n + 1), t2i)
