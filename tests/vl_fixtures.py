"""Tiny in-memory image-text data and configs shared by the tests/test_vl_*.py files."""

from __future__ import annotations

import torch

from mmdistill.data.paired import PairedDataset

NET = {"width": 4, "depth": 2, "embed_dim": 8, "text_hidden": 16}


def tiny_retrieval(name: str = "tiny", n_img: int = 24, caps: int = 2, size: int = 8, dim: int = 6, seed: int = 0,
                   params: dict | None = None) -> PairedDataset:
    g = torch.Generator().manual_seed(seed)
    img = torch.randn(n_img, 3, size, size, generator=g)
    t2i = torch.arange(n_img).repeat_interleave(caps)
    txt = torch.randn(n_img, dim, generator=g)[t2i] + 0.3 * torch.randn(n_img * caps, dim, generator=g)
    return PairedDataset(name, "train", "retrieval", {"image": img, "text": txt}, text_to_image=t2i,
                         captions=[f"caption {i}" for i in range(n_img * caps)], meta={"params": params or {}})


def experts_cfg(mode: str = "full", **kw) -> dict:
    return {"num_experts": 2, "epochs": 3, "batch_size": 16, "net": dict(NET), "encoder_epochs": 1, "mode": mode, **kw}
