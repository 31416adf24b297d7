"""Joint-embedding k-means initialisation of synthetic image-text pairs (MDM, Eq. 4).

1. Every real pair (one caption row and its image) is embedded as f = normalize([ẑᵛ; ẑᵗ]) with
   ẑ = the L2-normalised projected features of a teacher (the public code clusters ``image_text`` features the
   same way).
2. K = number of synthetic pairs clusters, seeded, so the result is deterministic per seed. ``metric``:

   * ``cosine`` (the public code: ``fast_pytorch_kmeans.KMeans(mode="cosine")``): spherical k-means — each
     point goes to the centroid of highest cosine similarity, a centroid is the plain mean of its points, K random
     points seed the centroids, stop when the squared centroid shift is <= 1e-4 or after ``max_iter`` rounds (an
     empty cluster keeps its previous centroid) [unverified: the package is not shipped with the code; update rule,
     stopping rule and empty-cluster handling are written from its documented cosine mode];
   * ``euclidean``: scikit-learn's k-means (``init`` ``random`` or ``k-means++``). This is *not* the cosine
     clustering: on unit vectors ‖f − c‖² = 1 + ‖c‖² − 2⟨f, c⟩, and the centroids c (means of unit vectors) have
     norms below 1 that differ between clusters, so the assignments differ from argmaxₖ cos(f, cₖ).

3. ``pick``: each centroid takes a real pair

   * ``in_cluster`` (the public code's ``query_incluster_n``): the member of its own cluster of highest cosine
     similarity to it (the K picks are then distinct); an empty cluster takes the most similar pair overall not
     taken by an earlier centroid;
   * ``distinct``: the most cosine-similar pair overall; two centroids sharing a nearest pair are resolved in label
     order, the later one taking its nearest pair not yet taken (``info["collisions"]`` counts how often).
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


def _assign(x: Tensor, centroids: Tensor, chunk: int = 65536) -> Tensor:
    """Index of the most cosine-similar centroid of every row (rows in chunks: COCO has 566k captions)."""
    c = F.normalize(centroids, dim=1)
    return torch.cat([(x[s:s + chunk] @ c.T).argmax(1) for s in range(0, x.shape[0], chunk)])


def cosine_kmeans(features: Tensor, k: int, seed: int, max_iter: int = 100, tol: float = 1e-4) -> tuple[Tensor, Tensor, int]:
    """Spherical k-means (see the module docstring): ``(labels, centroids, rounds)``."""
    x = F.normalize(features.float(), dim=1)
    n, d = x.shape
    g = torch.Generator().manual_seed(int(seed) % (2**63))
    cent = x[torch.randperm(n, generator=g)[:k]].clone()
    rounds = 0
    for rounds in range(1, max_iter + 1):
        labels = _assign(x, cent)
        counts = torch.bincount(labels, minlength=k)
        new = torch.zeros(k, d, dtype=x.dtype).index_add_(0, labels, x) / counts.clamp(min=1)[:, None].to(x.dtype)
        empty = counts == 0
        new[empty] = cent[empty]
        shift = float((new - cent).pow(2).sum())
        cent = new
        if shift <= tol:
            break
    return _assign(x, cent), cent, rounds


def nearest_in_cluster(features: Tensor, labels: Tensor, centroids: Tensor) -> tuple[Tensor, int]:
    """For each centroid the member of its cluster of highest cosine similarity; an empty cluster takes the most
    similar row overall not taken by an earlier centroid. Returns the indices and the number of empty clusters."""
    f = F.normalize(features.float(), dim=1)
    c = F.normalize(centroids.float(), dim=1)
    k = c.shape[0]
    taken = torch.zeros(f.shape[0], dtype=torch.bool)
    out = torch.empty(k, dtype=torch.long)
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=k)
    starts = torch.cumsum(counts, 0) - counts
    empty = 0
    for j in range(k):
        if counts[j] > 0:
            members = order[int(starts[j]):int(starts[j]) + int(counts[j])]
            pick = int(members[int((f[members] @ c[j]).argmax())])
        else:
            empty += 1
            pick = int((f @ c[j]).masked_fill(taken, float("-inf")).argmax())
        out[j] = pick
        taken[pick] = True
    return out, empty


def kmeans_select(features: Tensor, k: int, seed: int, n_init: int = 1, max_iter: int = 100,
                  init: str = "random", metric: str = "euclidean", pick: str = "distinct") -> tuple[Tensor, dict[str, Any]]:
    """Indices of ``k`` rows of ``features`` (one per k-means centroid) and clustering info (module docstring)."""
    n = features.shape[0]
    if not 1 <= k <= n:
        raise ConfigError(f"k-means init: K = {k} synthetic pairs must be between 1 and the {n} real pairs")
    if metric not in ("cosine", "euclidean"):
        raise ConfigError(f"k-means init: metric must be 'cosine' or 'euclidean', got {metric!r}")
    if pick not in ("in_cluster", "distinct"):
        raise ConfigError(f"k-means init: pick must be 'in_cluster' or 'distinct', got {pick!r}")
    if metric == "cosine":
        if init != "random":
            raise ConfigError(f"k-means init: metric 'cosine' seeds with random pairs (as the public code); got seeding {init!r}")
        labels_t, centroids, rounds = cosine_kmeans(features, k, seed, max_iter)
        info: dict[str, Any] = {"method": "cosine k-means (spherical, torch)", "metric": "cosine", "init": "random",
                                "k": k, "max_iter": max_iter, "n_iter": rounds}
        return _finish(features, labels_t, centroids, pick, info)
    from sklearn.cluster import KMeans

    x = F.normalize(features.float(), dim=1).numpy()  # float32: half the cost of float64
    if init not in ("random", "k-means++"):
        raise ConfigError(f"k-means init: centroid seeding must be 'random' or 'k-means++', got {init!r}")
    km = KMeans(n_clusters=k, init=init, n_init=n_init, max_iter=max_iter, random_state=int(seed) % (2**31))
    labels = km.fit_predict(x)
    centroids = torch.from_numpy(np.asarray(km.cluster_centers_)).float()
    info = {"method": "sklearn.cluster.KMeans", "metric": "euclidean", "init": init, "k": k, "n_init": n_init,
            "max_iter": max_iter, "inertia": float(km.inertia_), "n_iter": int(km.n_iter_)}
    return _finish(features, torch.from_numpy(np.asarray(labels)).long(), centroids, pick, info)


def _finish(features: Tensor, labels: Tensor, centroids: Tensor, pick: str, info: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
    sizes = torch.bincount(labels, minlength=centroids.shape[0])
    info.update({"pick": pick, "cluster_size_min": int(sizes.min()), "cluster_size_max": int(sizes.max())})
    if pick == "in_cluster":
        idx, empty = nearest_in_cluster(features, labels, centroids)
        info["empty_clusters"] = empty
    else:
        idx, collisions = nearest_distinct(features, centroids)
        info["collisions"] = collisions
    return idx, info
