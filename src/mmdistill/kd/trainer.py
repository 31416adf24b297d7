"""The cross-modal KD trainer behind ``mmdistill kd``.

Per seed: get the teacher (trained on ``teacher_modality`` of the training split, or loaded from the
teacher cache), build a fresh student for ``student_modality`` and the method's loss module, train the
student with ``sum(loss terms)`` (the terms include the task CE) and test it at the LAST epoch with its own
head. The batch is a dict keyed by modality (:mod:`mmdistill.kd.views`); features come from declared
hook points (:class:`~mmdistill.nets.hooks.FeatureTap`, :mod:`mmdistill.kd.taps`).

Frozen teachers (every method but C2KD) are in ``eval()`` and see un-augmented inputs, so their logits and
tapped features are computed once per teacher row before training and indexed per step (the same numbers
a per-step ``no_grad`` forward would give). C2KD's teacher is trainable: it runs in ``train()`` every step
and is in the optimiser. The student's inputs are augmented (random translation) when ``augment``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..data import load_dataset
from ..errors import DivergenceError
from ..evaluate.augment import augment_modality
from ..evaluate.results import Results, aggregate
from ..io import append_jsonl, atomic_write_text
from ..nets.hooks import FeatureTap
from ..seed import derive_seed, generator, seed_everything
from .base import Dims, FinalProbe, KDInputs
from .config import KDRunConfig
from .protocol import protocol_source, resolve_protocol
from .registry import get_kd_loss
from .taps import build_net, pool, tap_paths
from .teacher import accuracy, get_teacher, lr_at, make_optimizer, set_lr
from .views import ModalityView, make_view


def build_loss(method: str, params: dict[str, Any]):
    cls = get_kd_loss(method)
    from ..config import from_dict

    cfg = from_dict(cls.Config, dict(params), where=f"kd method {method!r} params")
    return cls, cfg


def _forward(net: nn.Module, x: Tensor, paths: list[str], io: str) -> tuple[Tensor, dict[str, Tensor]]:
    if not paths:
        return net(x), {}
    with FeatureTap(net, paths, io) as tap:
        z = net(x)
    return z, dict(tap.features)


@torch.no_grad()
def teacher_outputs(net: nn.Module, x: Tensor, paths: list[str], io: str, batch: int = 512,
                    device: str = "cpu") -> tuple[Tensor, dict[str, Tensor]]:
    """Logits and pooled taps of a frozen teacher for every row (eval mode)."""
    net.eval()
    zs, feats = [], {p: [] for p in paths}
    for i in range(0, x.shape[0], batch):
        z, f = _forward(net, x[i:i + batch].to(device), paths, io)
        zs.append(z.cpu())
        for p in paths:
            feats[p].append(pool(f[p]).cpu() if p in f else None)
    return torch.cat(zs), {p: torch.cat(v) for p, v in feats.items()}


def _probe_dims(net: nn.Module, shape: tuple[int, ...], taps: dict[str, str], io: str) -> dict[str, int]:
    was = net.training
    net.eval()
    paths = sorted(set(taps.values()))
    with torch.no_grad():
        dev = next(net.parameters()).device  # the net may already sit on the training device
        _, f = _forward(net, torch.zeros(2, *shape, device=dev), paths, io)
    net.train(was)
    return {k: int(f[p].shape[1]) for k, p in taps.items()}


def train_student(cfg: KDRunConfig, train: ModalityView, test: ModalityView, teacher: nn.Module,
                  t_taps: dict[str, str], num_classes: int, seed: int, log_path: Path | None = None) -> dict[str, Any]:
    """Train one student with the method's loss; returns metrics and a description of what ran."""
    dev = cfg.device
    loss_cls, loss_cfg = build_loss(cfg.method, cfg.params)
    needs = loss_cls.needs
    seed_everything(derive_seed("kd-student-init", seed))
    s_shape = tuple(train.x_student.shape[1:])
    student, s_taps, s_desc = build_net(cfg.student, s_shape, num_classes)
    student.to(dev)
    s_paths = tap_paths(s_taps, needs, s_desc["arch"])
    t_paths = tap_paths(t_taps, needs, "teacher")
    s_dims = _probe_dims(student, s_shape, {k: s_taps[k] for k in needs}, cfg.student.tap_io)
    t_dims = _probe_dims(teacher, tuple(train.x_teacher.shape[1:]), {k: t_taps[k] for k in needs}, cfg.teacher.tap_io)
    dims = Dims(s_feat=s_dims.get("feat", 0), t_feat=t_dims.get("feat", 0), s_mid=s_dims.get("mid", 0),
                t_mid=t_dims.get("mid", 0))
    loss = loss_cls(loss_cfg, dims, num_classes, seed).to(dev)
    trainable_teacher = loss_cls.trainable_teacher
    params = list(student.parameters()) + list(loss.parameters())
    if trainable_teacher:
        for p in teacher.parameters():
            p.requires_grad_(True)
        params += list(teacher.parameters())
        teacher.train()
    else:
        for p in teacher.parameters():
            p.requires_grad_(False)
        teacher.eval()
        t_logits_all, t_feats_all = teacher_outputs(teacher, train.x_teacher, t_paths, cfg.teacher.tap_io,
                                                    cfg.eval_batch_size, dev)
    spec = cfg.student_train
    opt = make_optimizer(params, spec)
    gen = generator(derive_seed("kd-student-batches", seed))
    n = train.x_student.shape[0]
    bs = min(spec.batch_size, n)
    steps = max(1, n // bs)
    student.train()
    loss.train()
    t0 = time.perf_counter()
    history = []
    for ep in range(spec.epochs):
        perm = torch.randperm(n, generator=gen)
        sums: dict[str, float] = {}
        for s in range(steps):
            set_lr(opt, lr_at(spec, ep, s, steps))
            rows = perm[s * bs:(s + 1) * bs]
            t_rows = train.sample_partners(rows, gen)
            xs = train.x_student[rows].to(dev)
            if spec.augment:
                xs = augment_modality(cfg.student_modality, xs, gen)
            y = train.y_student[rows].to(dev)
            z_s, f_s = _forward(student, xs, s_paths, cfg.student.tap_io)
            if trainable_teacher:
                z_t, f_t = _forward(teacher, train.x_teacher[t_rows].to(dev), t_paths, cfg.teacher.tap_io)
                t_feat = pool(f_t[t_taps["feat"]]) if "feat" in needs else None
                t_mid = f_t[t_taps["mid"]] if "mid" in needs else None
            else:
                z_t = t_logits_all[t_rows].to(dev)
                t_feat = t_feats_all[t_taps["feat"]][t_rows].to(dev) if "feat" in needs else None
                t_mid = t_feats_all[t_taps["mid"]][t_rows].to(dev) if "mid" in needs else None
            inp = KDInputs(s_logits=z_s, t_logits=z_t, y=y, epoch=ep,
                           s_feat=pool(f_s[s_taps["feat"]]) if "feat" in needs else None, t_feat=t_feat,
                           s_mid=f_s[s_taps["mid"]] if "mid" in needs else None, t_mid=t_mid)
            terms = loss(inp)
            total = sum(terms.values())
            if not torch.isfinite(total):
                raise DivergenceError(f"kd {cfg.method}: non-finite loss at epoch {ep} step {s}: "
                                      + ", ".join(f"{k}={float(v):.3g}" for k, v in terms.items()))
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item()
        rec = {"seed": seed, "epoch": ep, **{k: v / steps for k, v in sums.items()},
               "lr": opt.param_groups[0]["lr"], "elapsed_s": round(time.perf_counter() - t0, 2)}
        rec.update(loss.epoch_log())
        history.append(rec)
        if log_path is not None:
            append_jsonl(log_path, rec)
    train_s = time.perf_counter() - t0
    from .teacher import predict

    acc = accuracy(predict(student, test.x_student, cfg.eval_batch_size, dev), test.y_student)
    out: dict[str, Any] = {"student_acc": acc, "train_s": train_s, "student_net": s_desc, "dims": dataclasses.asdict(dims),
                           "loss": loss.describe(), "loss_config": dataclasses.asdict(loss_cfg), "history": history,
                           "steps": steps * spec.epochs}
    out.update(loss.final_report(_probe(cfg, student, teacher, s_taps, t_taps, test)))
    if trainable_teacher:
        out["teacher_acc_after"] = accuracy(predict(teacher, test.x_teacher, cfg.eval_batch_size, dev), test.y_teacher)
    return out


def _probe(cfg: KDRunConfig, student: nn.Module, teacher: nn.Module, s_taps: dict[str, str], t_taps: dict[str, str],
           test: ModalityView) -> FinalProbe:
    """Pooled ``feat`` taps of the trained student and of the teacher (each test row's first partner)."""

    def student_feat() -> Tensor:
        _, fs = teacher_outputs(student, test.x_student, [s_taps["feat"]], cfg.student.tap_io, cfg.eval_batch_size,
                                cfg.device)
        return fs[s_taps["feat"]]

    def teacher_feat() -> Tensor:
        rows = torch.arange(test.x_student.shape[0])
        _, ft = teacher_outputs(teacher, test.x_teacher[test.first_partners(rows)], [t_taps["feat"]],
                                cfg.teacher.tap_io, cfg.eval_batch_size, cfg.device)
        return ft[t_taps["feat"]]

    return FinalProbe(student_feat=student_feat, teacher_feat=teacher_feat)


def _num_classes(train_y: Tensor, test_y: Tensor) -> int:
    return int(max(int(train_y.max()), int(test_y.max()))) + 1


def run_seed(cfg: KDRunConfig, train_ds, test_ds, seed: int, log_path: Path | None = None) -> dict[str, Any]:
    tr = make_view(train_ds, cfg.student_modality, cfg.teacher_modality, cfg.label)
    te = make_view(test_ds, cfg.student_modality, cfg.teacher_modality, cfg.label)
    nc = _num_classes(tr.y_student, te.y_student)
    t0 = time.perf_counter()
    teacher, t_taps, manifest = get_teacher(
        dataset=cfg.dataset, data=cfg.data, modality=cfg.teacher_modality, label=cfg.label, spec=cfg.teacher,
        train=cfg.teacher_train, seed=seed, x_train=tr.x_teacher, y_train=tr.y_teacher, x_test=te.x_teacher,
        y_test=te.y_teacher, num_classes=nc, use_cache=cfg.teacher_cache, device=cfg.device)
    teacher_s = time.perf_counter() - t0
    res = train_student(cfg, tr, te, teacher, t_taps, nc, seed, log_path)
    res.update({"seed": seed, "teacher_acc": manifest["test_acc"], "teacher_cache_key": manifest["cache_key"],
                "teacher_from_cache": manifest["from_cache"], "teacher_net": manifest["net"], "teacher_s": teacher_s,
                "num_classes": nc, "n_train_student_rows": int(tr.x_student.shape[0]),
                "n_test_student_rows": int(te.x_student.shape[0]), "n_test_teacher_rows": int(te.x_teacher.shape[0])})
    return res


def describe_protocol(cfg: KDRunConfig, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    first = per_seed[0]
    return {
        "task": "cross-modal KD",
        "protocol": cfg.protocol, "protocol_source": protocol_source(cfg),
        "direction": f"{cfg.teacher_modality} -> {cfg.student_modality}",
        "teacher_modality": cfg.teacher_modality, "student_modality": cfg.student_modality,
        "method": cfg.method, "method_config": first["loss_config"], "loss": first["loss"],
        "label": cfg.label, "num_classes": first["num_classes"],
        "teacher": {**first["teacher_net"], "train": dataclasses.asdict(cfg.teacher_train),
                    "frozen": not first["loss"]["trainable_teacher"], "one teacher per seed": True},
        "student": {**first["student_net"], "train": dataclasses.asdict(cfg.student_train), "from_scratch": True},
        "nets": {"teacher": first["teacher_net"]["arch"], "student": first["student_net"]["arch"]},
        "tap_points": {"teacher": first["teacher_net"]["taps"], "student": first["student_net"]["taps"],
                       "pooling": "global average over space"},
        "optimizer": cfg.student_train.optimizer, "lr": cfg.student_train.lr,
        "weight_decay": cfg.student_train.weight_decay, "batch_size": cfg.student_train.batch_size,
        "epochs": cfg.student_train.epochs, "lr_schedule": cfg.student_train.lr_schedule,
        "augment": cfg.student_train.augment, "steps": first["steps"],
        "seeds": list(cfg.seeds), "selection": cfg.selection, "heads": "main (the student's own classifier)",
        "trained_modules": "student + the method's heads/projectors" + (" + teacher" if first["loss"]["trainable_teacher"] else ""),
        "teacher_inputs": "un-augmented; frozen teachers' outputs precomputed per row",
        "split": "train on the training split, test on the dataset's test split",
        "data": cfg.data,
    }


def run_kd(cfg: KDRunConfig, out: str | Path, data_root: str | None = None) -> Results:
    """Run every seed, write ``config.yaml``, ``log.jsonl`` and ``results.json`` into ``out``."""
    import yaml

    cfg = resolve_protocol(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    build_loss(cfg.method, cfg.params)  # fail on a bad method/params before loading data
    atomic_write_text(out / "config.yaml", yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    train_ds = load_dataset(cfg.dataset, "train", data_root, **cfg.data)
    test_ds = load_dataset(cfg.dataset, "test", data_root, **cfg.data)
    log = out / "log.jsonl"
    per_seed = [run_seed(cfg, train_ds, test_ds, s, log) for s in cfg.seeds]
    metrics = aggregate([{"student_acc": r["student_acc"], "teacher_acc": r["teacher_acc"]} for r in per_seed])
    res = Results(dataset=cfg.dataset, method=cfg.method, budget=None, protocol=describe_protocol(cfg, per_seed),
                  metrics=metrics,
                  extra={"per_seed": [{k: v for k, v in r.items() if k not in ("history", "student_net", "teacher_net",
                                                                                  "loss", "loss_config")} for r in per_seed],
                         "teacher_modality": cfg.teacher_modality, "student_modality": cfg.student_modality})
    res.save(out / "results.json")
    return res
