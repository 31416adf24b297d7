"""Unimodal teachers: trained once on one modality of the paired training split, cached on disk.

Cache: ``cache_dir()/teachers/<key>.safetensors`` (state dict) + ``<key>.json`` (manifest: the exact
recipe, the test accuracy, the weights' sha256). ``key`` = sha256 of the recipe (dataset, data params,
modality, label, net spec, training spec, seed, format version), so a changed recipe never reuses a stale
teacher. Both files are written atomically; a manifest whose sha256 does not match is rejected
(:class:`~mmdistill.errors.IntegrityError`) and the teacher retrained.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.root import cache_dir
from ..errors import IntegrityError
from ..evaluate.augment import augment_modality
from ..io import atomic_write_json, atomic_write_with, sha256_bytes, sha256_file
from ..train.loop import epoch_batches, fit
from ..seed import derive_seed, generator, seed_everything
from .config import NetSpec, TrainSpec
from .taps import build_net, resolve_spec

FORMAT = "kd-teacher-v2"


def make_optimizer(params: list[nn.Parameter], spec: TrainSpec) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)


def lr_at(spec: TrainSpec, epoch: int, step_in_epoch: int, steps_per_epoch: int) -> float:
    """Learning rate for a step: cosine per step, poly per epoch (FD-CMKD/C2KD code), or constant."""
    total = spec.epochs * steps_per_epoch
    t = epoch * steps_per_epoch + step_in_epoch
    if spec.lr_schedule == "cosine":
        return 0.5 * spec.lr * (1 + math.cos(math.pi * t / max(total, 1)))
    if spec.lr_schedule == "poly":
        if spec.poly_update == "after_step" and step_in_epoch == 0:
            if epoch == 0:
                return spec.lr
            epoch -= 1
        return 1e-4 + (spec.lr - 1e-4) * (1 - epoch / spec.epochs) ** 0.9
    return spec.lr


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


@torch.no_grad()
def predict(net: nn.Module, x: Tensor, batch_size: int = 512, device: str = "cpu") -> Tensor:
    was = net.training
    net.eval()
    out = torch.cat([net(x[i:i + batch_size].to(device)).cpu() for i in range(0, x.shape[0], batch_size)])
    net.train(was)
    return out


def accuracy(logits: Tensor, y: Tensor) -> float:
    return 100.0 * float((logits.argmax(1) == y).float().mean()) if y.numel() else float("nan")


def fit_classifier(net: nn.Module, x: Tensor, y: Tensor, spec: TrainSpec, seed: int, modality: str,
                   device: str = "cpu") -> list[float]:
    """Plain CE training (the teacher recipe); returns the mean loss per epoch."""
    seed_everything(seed)
    gen = generator(derive_seed("kd-teacher-batches", seed))
    opt = make_optimizer(list(net.parameters()), spec)
    n = x.shape[0]
    bs = min(spec.batch_size, n)
    steps = max(1, n // bs)
    net.train()
    sums = [0.0] * spec.epochs

    def batch_loss(idx: Tensor) -> Tensor:
        xb = x[idx].to(device)
        if spec.augment:
            xb = augment_modality(modality, xb, gen)
        return F.cross_entropy(net(xb), y[idx].to(device))

    def after(i: int, loss: Tensor) -> None:
        sums[i // steps] += loss.item()

    fit(opt, epoch_batches(n, bs, spec.epochs, gen, drop_last=True), batch_loss,
        before=lambda i: set_lr(opt, lr_at(spec, i // steps, i % steps, steps)), after=after)
    return [t / steps for t in sums]


def teacher_recipe(dataset: str, data: dict[str, Any], modality: str, label: str, spec: NetSpec, train: TrainSpec,
                   seed: int, in_shape: tuple[int, ...], num_classes: int) -> dict[str, Any]:
    """Everything the weights depend on. The net enters RESOLVED (``auto`` -> its arch and kwargs; taps left
    out), so an explicit config and the equivalent ``auto`` spec share one cached teacher."""
    arch, kw = resolve_spec(spec, in_shape)
    tr = asdict(train)
    if tr.get("poly_update") == "epoch_start":  # the default leaves the weights, hence keys cached before it, as they were
        tr.pop("poly_update")
    return {"format": FORMAT, "dataset": dataset, "data": data, "modality": modality, "label": label,
            "net": {"arch": arch, "kwargs": kw}, "train": tr, "seed": seed, "in_shape": list(in_shape),
            "num_classes": num_classes}


def recipe_key(recipe: dict[str, Any]) -> str:
    return sha256_bytes(json.dumps(recipe, sort_keys=True, default=str).encode())[:24]


def _paths(key: str) -> tuple[Path, Path]:
    d = cache_dir() / "teachers"
    return d / f"{key}.safetensors", d / f"{key}.json"


def load_cached(key: str, net: nn.Module) -> dict[str, Any] | None:
    from safetensors.torch import load_file

    w, m = _paths(key)
    if not (w.is_file() and m.is_file()):
        return None
    manifest = json.loads(m.read_text(encoding="utf-8"))
    if sha256_file(w) != manifest.get("sha256"):
        raise IntegrityError(f"{w}: sha256 does not match {m}; delete both files to retrain the teacher")
    net.load_state_dict(load_file(str(w)))
    return manifest


def save_cached(key: str, net: nn.Module, manifest: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    w, m = _paths(key)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    atomic_write_with(w, lambda p: save_file(state, p))
    atomic_write_json(m, {**manifest, "sha256": sha256_file(w), "file": w.name})
    return w


def get_teacher(*, dataset: str, data: dict[str, Any], modality: str, label: str, spec: NetSpec, train: TrainSpec,
                seed: int, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor, num_classes: int,
                use_cache: bool = True, device: str = "cpu") -> tuple[nn.Module, dict[str, str], dict[str, Any]]:
    """(trained teacher in eval mode, its taps, manifest incl. ``test_acc``, ``cache_key``, ``from_cache``)."""
    in_shape = tuple(x_train.shape[1:])
    recipe = teacher_recipe(dataset, data, modality, label, spec, train, seed, in_shape, num_classes)
    key = recipe_key(recipe)
    torch.manual_seed(derive_seed("kd-teacher-init", seed))
    net, taps, desc = build_net(spec, in_shape, num_classes)
    net.to(device)
    manifest = None
    if use_cache:
        try:
            manifest = load_cached(key, net)
        except IntegrityError:
            manifest = None
    if manifest is None:
        hist = fit_classifier(net, x_train, y_train, train, seed, modality, device)
        acc = accuracy(predict(net, x_test, device=device), y_test)
        manifest = {"recipe": recipe, "net": desc, "test_acc": acc, "train_loss": hist, "cache_key": key}
        if use_cache:
            save_cached(key, net, manifest)
        manifest["from_cache"] = False
    else:
        manifest["from_cache"] = True
    net.eval()
    return net, taps, manifest
