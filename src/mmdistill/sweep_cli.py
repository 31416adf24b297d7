"""``mmdistill sweep``: evaluate run directories x archs x seeds as one resumable job list (split over ranks under
``torchrun``)."""

from __future__ import annotations

import argparse


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .parallel.context import init_from_env
    from .runs import sweep_report

    ctx = init_from_env()
    seeds = list(range(args.seeds)) if args.seeds else None
    rep = sweep_report(args.run_dirs, args.arch or [None], seeds=seeds, overrides=args.set, baseline=not args.no_baseline,
                       data_root=args.data_root)
    if ctx.is_main:
        for run_dir, res in zip([r for r in args.run_dirs for _ in (args.arch or [None])], rep.value or []):
            print(f"{run_dir} ({res.extra.get('eval_arch')}): {res.method} on {res.dataset}: {res.line()}")
        print(f"{len(rep.ran) + len(rep.skipped)} evaluation jobs over {ctx.world} process(es): {len(rep.ran)} run, "
              f"{len(rep.skipped)} already finished (skipped), {rep.wall_s:.1f} s")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse has no public type
    """Register the scale-out subcommands."""
    s = sub.add_parser("sweep", help="evaluate run directories x archs x seeds as a resumable job list "
                                     "(split over ranks under torchrun)")
    s.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    s.add_argument("--arch", action="append", default=None,
                   help="evaluation architecture (repeatable; default: the protocol's, written to results.json)")
    s.add_argument("--seeds", type=int, help="number of evaluation seeds (default: the run config's, else 3)")
    s.add_argument("--no-baseline", action="store_true", help="skip the same-size random subset")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a protocol field")
    s.add_argument("--data-root", default=None, help="data root (default: $MMDISTILL_DATA, then ../shared/data)")
    s.set_defaults(func=_cmd_sweep)
