"""Why ResNet-18 evaluation collapses on some audio-visual sets (the av suite's cross-architecture rows).

At IPC 1 on av-digits the cross-architecture ResNet-18 rows of ``avdd``, ``dm-avdd-lr`` and ``davdd`` sit at
chance (~10 %) while DM's set gets 53 % and the same sets reach 70-88 % with ConvNet, AlexNet and VGG11. Of the
evaluation nets only ResNet-18 uses BatchNorm (ConvNet and VGG11 use instance norm, LeNet and AlexNet none), and
a BatchNorm net trained on 10 synthetic pairs tests with running statistics of those pairs. Hypothesis: the
larger effective step (AVDD's lr 0.2 with λ 10/10 = DM at lr 4.2, see the dm-avdd-lr config) moves the pixels'
first and second moments away from the real data's, so the running statistics mismatch the real test inputs.

The probe distils the quick-config sets at IPC 1 (synthetic seed 0; herding init = the ``init`` row), records each
modality's pixel mean and std next to the real training split's, and evaluates every set with ResNet-18 under
three variants of the suite's protocol (3 evaluation seeds, last epoch):

* ``batchnorm``: the bench protocol (registered ResNet-18, BatchNorm);
* ``instance``: the same net with instance norm (``arch_kwargs: {resnet18: {norm: instance}}``);
* ``batchnorm, standardised``: BatchNorm, but each modality of the set affinely rescaled to the real training
  split's global mean and std (a diagnostic only: the set's own information is unchanged, its moments match).

If the collapse disappears under both ``instance`` and ``standardised``, the moments are the cause. Results go
to ``results.json`` beside this script (table: :func:`probe_lines`). Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/studies/av_bn_probe/probe.py [dataset] [ipc]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor


REPO = Path(__file__).resolve().parents[3]  # the checkout: benchmarks/suites/ and configs/ live there


def av_cell(label: str, dataset: str, ipc: int) -> Any:
    """The ``av`` suite's cell of row ``label`` (the method, params and data params the benchmark runs)."""
    from mmdistill.bench.suite import load_suite

    for c in load_suite("av", REPO / "benchmarks" / "suites", REPO / "configs").cells:
        if c.dataset == dataset and c.row_method == label and c.budget == ipc:
            return c
    raise SystemExit(f"the av suite has no cell {label} on {dataset} at IPC {ipc}")

MODALITIES = ("audio", "visual")
SETS = ("dm", "avdd", "dm-avdd-lr", "davdd")
EVAL_VARIANTS: dict[str, tuple[dict[str, Any], bool]] = {
    "batchnorm": ({}, False),
    "instance": ({"arch_kwargs": {"resnet18": {"norm": "instance"}}}, False),
    "batchnorm, standardised": ({}, True),
}
ARCH = "resnet18"
RESULTS = Path(__file__).resolve().parent / "results.json"


def _moments(x: Tensor) -> tuple[float, float]:
    return float(x.mean()), float(x.std())


def standardise(syn: dict[str, Tensor], real: dict[str, Tensor]) -> dict[str, Tensor]:
    """Each modality of ``syn`` affinely mapped to ``real``'s global mean and std."""
    out = {}
    for m, x in syn.items():
        (ms, ss), (mr, sr) = _moments(x), _moments(real[m])
        out[m] = (x - ms) / max(ss, 1e-8) * sr + mr
    return out


def probe(dataset: str = "av-digits", ipc: int = 1, data_root: str | None = None,
          sets: tuple[str, ...] = SETS) -> dict[str, Any]:
    from mmdistill.config import from_dict
    from mmdistill.data import load_dataset
    from mmdistill.distill import Budget, get_method
    from mmdistill.distill.base import run
    from mmdistill.evaluate.protocol import decode_for_training, default_protocol, evaluate_tensors
    from mmdistill.seed import derive_seed, seed_everything

    DATA = av_cell("dm", dataset, ipc).data

    torch.set_num_threads(1)
    train = load_dataset(dataset, "train", data_root, **DATA)
    test = load_dataset(dataset, "test", data_root, **DATA)
    real = train.pairs()
    tensors: dict[str, dict[str, Tensor]] = {}
    labels: dict[str, Tensor] = {}
    with tempfile.TemporaryDirectory(prefix="mmdistill-bnprobe-") as tmp:
        for label in sets:
            cell = av_cell(label, dataset, ipc)
            method, params = cell.method, cell.params
            cls = get_method(method)
            cfg = from_dict(cls.Config, params, where=f"bn probe {label}")
            if "init" not in tensors:  # the herding init the distilled sets start from (run() seeds init the same way)
                d0 = cls(cfg, train, Budget(ipc, "ipc"), 0)
                seed_everything(derive_seed(0, "init"))
                d0.init()
                s0 = decode_for_training(d0.export())
                tensors["init"], labels["init"] = dict(s0.tensors), s0.labels
            syn = decode_for_training(run(cls(cfg, train, Budget(ipc, "ipc"), 0), Path(tmp) / label, progress=False))
            tensors[label], labels[label] = dict(syn.tensors), syn.labels
    res: dict[str, Any] = {"dataset": dataset, "ipc": ipc, "arch": ARCH, "syn_seed": 0, "eval_seeds": [0, 1, 2],
                           "real_moments": {m: _moments(real[m]) for m in MODALITIES}, "sets": {}}
    for name, x in tensors.items():
        entry: dict[str, Any] = {"moments": {m: _moments(x[m]) for m in MODALITIES}, "fused_acc": {}}
        for variant, (over, std) in EVAL_VARIANTS.items():
            proto = default_protocol("classification", arch=ARCH, seeds=[0, 1, 2], **over)
            data = standardise(x, real) if std else x
            t0 = time.perf_counter()
            metrics, _ = evaluate_tensors(proto, data, labels[name], test)
            f = metrics["fused_acc"]
            entry["fused_acc"][variant] = {"mean": f["mean"], "std": f["std"]}
            print(f"[bn-probe] {name} {variant}: {f['mean']:.1f} ± {f['std']:.1f} ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
        res["sets"][name] = entry
    return res


def load(path: Path = RESULTS) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def probe_lines(res: dict[str, Any] | None = None) -> list[str]:
    """Markdown table of the probe (empty when it has not been run)."""
    res = load() if res is None else res
    if not res:
        return []
    rm = res["real_moments"]
    out = [f"ResNet-18 collapse probe (`python benchmarks/studies/av_bn_probe/probe.py {res['dataset']} {res['ipc']}`; "
           f"{res['dataset']} IPC {res['ipc']}, synthetic seed {res['syn_seed']}, fused accuracy over evaluation seeds "
           f"{res['eval_seeds']}; real training pixels: audio mean {rm['audio'][0]:.2f} / std {rm['audio'][1]:.2f}, "
           f"visual {rm['visual'][0]:.2f} / {rm['visual'][1]:.2f}). Only ResNet-18 among the evaluation nets uses "
           "BatchNorm; *standardised* rescales each modality of the set to the real split's mean and std:", "",
           "| set | audio mean / std | visual mean / std | " + " | ".join(EVAL_VARIANTS) + " |",
           "|---|---|---|" + "---|" * len(EVAL_VARIANTS)]
    for name, e in res["sets"].items():
        mo = e["moments"]
        accs = " | ".join(f"{e['fused_acc'][v]['mean']:.1f} ± {e['fused_acc'][v]['std']:.1f}" for v in EVAL_VARIANTS)
        out.append(f"| {name} | {mo['audio'][0]:.2f} / {mo['audio'][1]:.2f} | {mo['visual'][0]:.2f} / "
                   f"{mo['visual'][1]:.2f} | {accs} |")
    return out + [""] + PROBE_NOTES


# What the probe showed (the committed results file); printed under the table.
PROBE_NOTES: list[str] = [
    "- The collapse is BatchNorm's running statistics, not the sets' content. AVDD's and dm-avdd-lr's pixels have "
    "3.1x (audio) / 2.7x (visual) the real data's std, DAVDD's 9.3x / 6.9x (DM's and the herding init's stay at "
    "~1x). A BatchNorm net trained on 10 such pairs normalises the real test inputs with running statistics "
    "that are several times too wide, and predicts one class (10-11 %). With instance norm the same ResNet-18 "
    "puts AVDD and dm-avdd-lr level with DM (83.8 / 84.6 vs 84.2), and rescaling the set to the real moments "
    "restores 41-46 % under BatchNorm. The rest of the gap to DM's 53 % is the per-channel and per-position "
    "structure a global rescale does not fix. DAVDD stays lowest under every variant, as in the ConvNet rows.",
    "- Instance norm also lifts the sets whose moments are fine (init 40.7 -> 71.9, DM 53.2 -> 84.2): BatchNorm "
    "over batches of 10 costs ~30 points at IPC 1 on its own. The benchmark's cross-architecture ResNet-18 keeps "
    "the standard BatchNorm net. `--set arch_kwargs.resnet18.norm=instance` evaluates the instance-norm variant.",
]


def main(argv: list[str] | None = None) -> None:
    from mmdistill.io import atomic_write_json

    a = sys.argv[1:] if argv is None else argv
    res = probe(a[0] if a else "av-digits", int(a[1]) if len(a) > 1 else 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS, res)
    print("\n".join(probe_lines(res)))


if __name__ == "__main__":
    main()
