"""CLI for ``mmdistill report RUN_DIR`` and ``mmdistill compare RUN_DIR...``."""

from __future__ import annotations

import argparse


def _cmd_report(args: argparse.Namespace) -> int:
    from .build import build_report
    from .sections import Options

    opt = Options(max_images=args.max_images, max_audio=args.max_audio, max_text=args.max_text,
                  neighbours=args.neighbours, gl_iters=args.gl_iters)
    out = build_report(args.run_dir, args.out, data_root=args.data_root, opt=opt, load_data=not args.no_data,
                       save_plots=not args.no_plots)
    print(f"report: {out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_runs, to_markdown

    out, metric, rows = compare_runs(args.run_dirs, args.out, metric=args.metric, arch=args.arch)
    print(to_markdown(rows, metric))
    print(f"compare: {out} (table: {out.with_suffix('.csv')})")
    return 0


def _positive(v: str) -> int:
    n = int(v)
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return n


def add_parsers(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse has no public type
    """Register ``report`` and ``compare``."""
    r = sub.add_parser("report", help="write a self-contained HTML report of a run directory")
    r.add_argument("run_dir")
    r.add_argument("--out", help="output HTML (default RUN_DIR/report.html)")
    r.add_argument("--max-images", type=_positive, default=40, help="synthetic images drawn (default 40)")
    r.add_argument("--max-audio", type=_positive, default=None,
                   help="spectrograms + players (default: every audio row, in pages of 10)")
    r.add_argument("--max-text", type=_positive, default=20, help="text vectors with nearest captions (default 20)")
    r.add_argument("--neighbours", type=_positive, default=3, help="nearest real captions per text vector (default 3)")
    r.add_argument("--gl-iters", type=_positive, default=32, help="Griffin-Lim iterations (default 32)")
    r.add_argument("--no-data", action="store_true", help="do not load the dataset (no captions, norms or playback)")
    r.add_argument("--no-plots", action="store_true", help="do not also save the figures under RUN_DIR/plots/")
    r.add_argument("--data-root", default=None, help="data root (default: $MMDISTILL_DATA, then ../shared/data)")
    r.set_defaults(func=_cmd_report)

    c = sub.add_parser("compare", help="plot a metric against budget for several runs and write a table")
    c.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    c.add_argument("--out", default="compare.html", help="output HTML (default compare.html; a .csv goes beside it)")
    c.add_argument("--metric", help="metric to plot (default fused_acc or r_mean)")
    c.add_argument("--arch", help="read results.<arch>.json (cross-architecture results)")
    c.set_defaults(func=_cmd_compare)
