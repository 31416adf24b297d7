"""``make demo``: dataset distillation working end to end on the embedded audio-visual digits.

DM (distribution matching, Zhao & Bilen, arXiv:2110.04181) learns 1 audio-visual pair per class of
``av-digits`` (spoken FSDD digits paired with MNIST-style images, shipped under ../shared/data) with the shipped
CPU config. The 10 learned pairs are evaluated next to a random subset of the same size and next to the full
training set, all under the default protocol (fresh ConvNets trained on the set, last epoch, 3 seeds, the
dataset's full test split); the report page is written into the run directory and a three-line summary printed.
The full-data reference is cached under ``$MMDISTILL_CACHE/full-data/`` and reused by later runs and reports.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .errors import MMDistillError

METHOD, DATASET, IPC = "dm", "av-digits", 1
OUT = Path("runs") / "demo-dm-av-digits-1ipc"
METRIC = "fused_acc"


def summary(res: dict, base: dict, full: dict, n_set: int, n_full: int, label: str = "DM") -> list[str]:
    """The three lines the demo ends with (method vs random vs full data, % retained, where the report is
    goes last and is added by the caller)."""
    m, b, f = res[METRIC], base[METRIC], full[METRIC]
    return [
        f"fused accuracy: {label} {n_set} pairs {m['mean']:.2f} ± {m['std']:.2f} | random {n_set} pairs "
        f"{b['mean']:.2f} ± {b['std']:.2f} | full data {n_full} pairs {f['mean']:.2f} ± {f['std']:.2f}",
        f"% of the full-data accuracy retained with {100 * n_set / n_full:.2f}% of the training pairs: "
        f"{label} {100 * m['mean'] / f['mean']:.1f}%, random subset {100 * b['mean'] / f['mean']:.1f}%",
    ]


def main(out: str | Path = OUT) -> int:
    from .evaluate.reference import full_reference_dir
    from .progress import say
    from .report.build import build_report
    from .runs import distill, evaluate_full, evaluate_run, resolve_run_config
    from .seed import set_threads
    from .shipped import shipped_config

    set_threads()
    t0 = time.perf_counter()
    shipped = shipped_config(METHOD, DATASET)
    if shipped is None:
        raise MMDistillError(f"the shipped config configs/av/{METHOD}_{DATASET}.yaml is missing from this checkout")
    cfg = resolve_run_config(shipped.path, method=METHOD, dataset=DATASET, ipc=IPC, seed=0)
    print(f"mmdistill demo: DM distils {DATASET} into {IPC} audio-visual pair per class ({shipped.rel()})", flush=True)
    say("demo 1/4: distilling (the first run also computes the log-mel features; cached afterwards)")
    run_dir, syn = distill(cfg, out, overwrite=True)
    say("demo 2/4: evaluating the set and a random subset of the same size (3 seeds each)")
    res = evaluate_run(run_dir)
    say("demo 3/4: the full training set under the same protocol (cached after the first run)")
    fields = dict(cfg.eval)
    full = evaluate_full(DATASET, full_reference_dir(DATASET, cfg.data, fields), data=dict(cfg.data),
                         overrides=[f"{k}={json.dumps(v)}" for k, v in fields.items()])
    say("demo 4/4: writing the report page")
    page = build_report(run_dir)
    base = res.extra["random_subset_same_size"]["metrics"]
    print()
    for line in summary(res.metrics, base, full.metrics, len(syn), int(full.extra["n_train_pairs"])):
        print(line)
    print(f"report: {page.resolve()}  (demo took {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MMDistillError as e:
        print(f"mmdistill: error: {e}", file=sys.stderr)
        sys.exit(2)
