"""Joint-embedding k-means initialisation of synthetic image-text pairs (MDM, vl-distillation.md §5 (i), Eq. 4).

1. Every real pair (one caption row and its image) is embedded as f = normalize([ẑᵛ; ẑᵗ]) with
   ẑ = the L2-normalised projected features of a teacher (the public code clusters ``image_text`` features the
   same way).
2. scikit-learn k-means with K = number of synthetic pairs, seeded (``random_state``), so the result is
   deterministic per seed. Centroid seeding ``init``: ``random`` (K random real pairs; what the public code's
   torch ``KMeans(n_clusters, mode=...)`` class does [unverified: the class is imported, not shipped]) or
   ``k-means++`` (scikit-learn's default; 5x the CPU time of the whole clustering on emoji). On unit vectors squared Euclidean distance is 2 − 2 cos, so Euclidean k-means
   assignments are the cosine ones (the code's default ``cluster_mode cosine``).
3. Each centroid takes the real pair whose f has the highest cosine similarity to it. Two centroids can share
   a nearest pair; the later centroid (in k-means' label order) then takes its nearest pair not yet taken,
   so the K seeds are distinct pairs (``info["collisions"]`` counts how often this happened).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ConfigError


def joint_features(z_img: Tensor, z_txt: Tensor) -> Tensor:
    """f = normalize([normalize(z_img); normalize(z_txt)]) per row."""
    return F.normalize(torch.cat([F.normalize(z_img, dim=1), F.normalize(z_txt, dim=1)], dim=1), dim=1)


def nearest_distinct(features: Tensor, centroids: Tensor, candidates: int = 16) -> tuple[Tensor, int]:
    """For each centroid (in order) the index of the most cosine-similar row of ``features`` not taken yet."""
    f = F.normalize(features.float(), dim=1)
    c = F.normalize(centroids.float(), dim=1)
    n, k = f.shape[0], c.shape[0]
    if k > n:
        raise ConfigError(f"k-means init: {k} centroids but only {n} real pairs")
    taken = torch.zeros(n, dtype=torch.bool)
    out = torch.empty(k, dtype=torch.long)
    collisions = 0
    m = min(candidates, n)
    for s in range(0, k, 64):  # chunks keep the (K, N) similarity matrix small (64 x 566k COCO captions: 145 MB)
        sims = c[s:s + 64] @ f.T
        top = sims.topk(m, dim=1).indices
        for r in range(sims.shape[0]):
            pick = next((int(j) for j in top[r] if not taken[j]), None)
            if pick is None:  # all candidates taken: the best untaken row
                row = sims[r].masked_fill(taken, float("-inf"))
                pick = int(row.argmax())
            if pick != int(top[r, 0]):
                collisions += 1
            taken[pick] = True
            out[s + r] = pick
    return out, collisions


def kmeans_select(features: Tensor, k: int, seed: int, n_init: int = 1, max_iter: int = 100,
                  init: str = "random") -> tuple[Tensor, dict[str, Any]]:
    """Indices of ``k`` distinct rows of ``features`` (one per k-means centroid) and clustering info."""
    from sklearn.cluster import KMeans

    n = features.shape[0]
    if not 1 <= k <= n:
        raise ConfigError(f"k-means init: K = {k} synthetic pairs must be between 1 and the {n} real pairs")
    x = F.normalize(features.float(), dim=1).numpy()  # float32: half the cost of float64
    if init not in ("random", "k-means++"):
        raise ConfigError(f"k-means init: centroid seeding must be 'random' or 'k-means++', got {init!r}")
    km = KMeans(n_clusters=k, init=init, n_init=n_init, max_iter=max_iter, random_state=int(seed) % (2**31))
    labels = km.fit_predict(x)
    centroids = torch.from_numpy(np.asarray(km.cluster_centers_)).float()
    idx, collisions = nearest_distinct(features, centroids)
    sizes = np.bincount(labels, minlength=k)
    info = {"method": "sklearn.cluster.KMeans", "init": init, "k": k, "n_init": n_init, "max_iter": max_iter,
            "inertia": float(km.inertia_), "n_iter": int(km.n_iter_), "collisions": collisions,
            "cluster_size_min": int(sizes.min()), "cluster_size_max": int(sizes.max())}
    return idx, info
