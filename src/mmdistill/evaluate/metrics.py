"""Retrieval and classification metrics.

* IR@K (text -> image): a caption query hits if its image ranks within the top K images.
* TR@K (image -> text): an image query hits if ANY of its captions ranks within the top K captions.
* ``r_mean`` = mean of IR@1/5/10 and TR@1/5/10. All in percent.
* ``group_recalls``: many positives per query (e.g. every test item of the query's concept): a query hits at K
  if ANY of its positives ranks within the top K of the gallery (ties broken in the query's favour, as above).
"""

from __future__ import annotations

import torch
from torch import Tensor

KS = (1, 5, 10)


def retrieval_recalls(sim: Tensor, text_to_image: Tensor, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """``sim``: (n_img, n_txt) similarity; ``text_to_image``: (n_txt,) image index of each caption."""
    n_img, n_txt = sim.shape
    t2i = text_to_image.long()
    # IR: rank of the true image for each caption = number of images scoring strictly higher.
    true_scores = sim[t2i, torch.arange(n_txt)]
    ir_rank = (sim > true_scores.unsqueeze(0)).sum(0)  # (n_txt,)
    # TR: for each image, the best rank among its captions.
    best = torch.full((n_img,), float("-inf"), dtype=sim.dtype).scatter_reduce(0, t2i, true_scores, reduce="amax")
    tr_rank = (sim > best.unsqueeze(1)).sum(1)  # (n_img,)
    has_caption = torch.bincount(t2i, minlength=n_img) > 0
    out: dict[str, float] = {}
    for k in ks:
        out[f"ir@{k}"] = 100.0 * float((ir_rank < k).float().mean())
    for k in ks:
        out[f"tr@{k}"] = 100.0 * float((tr_rank[has_caption] < k).float().mean())
    out["r_mean"] = sum(out[f"ir@{k}"] + out[f"tr@{k}"] for k in ks) / (2 * len(ks))
    return out


def group_recalls(sim: Tensor, query_groups: Tensor, gallery_groups: Tensor, ks: tuple[int, ...] = KS) -> dict[int, float]:
    """``sim``: (n_query, n_gallery); the positives of query q are the gallery items with
    ``gallery_groups == query_groups[q]``. {K: % of queries with a positive among the top K}; a query without
    positives raises."""
    pos = query_groups.view(-1, 1) == gallery_groups.view(1, -1)
    if not bool(pos.any(1).all()):
        raise ValueError("group_recalls: a query has no positive in the gallery")
    best = sim.masked_fill(~pos, float("-inf")).amax(1)  # best-scoring positive per query
    rank = (sim > best.unsqueeze(1)).sum(1)
    return {k: 100.0 * float((rank < k).float().mean()) for k in ks}


def group_chance(query_groups: Tensor, gallery_groups: Tensor) -> float:
    """Expected R@1 (%) of a random ranking: mean over queries of (number of positives / gallery size)."""
    pos = (query_groups.view(-1, 1) == gallery_groups.view(1, -1)).float()
    return 100.0 * float(pos.mean(1).mean())


def accuracy(logits_or_probs: Tensor, labels: Tensor) -> float:
    return 100.0 * float((logits_or_probs.argmax(1) == labels).float().mean())
