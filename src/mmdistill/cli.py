"""``mmdistill`` command line: a thin shell over :mod:`mmdistill.runs` and friends.

Subcommands: ``data list|info``, ``distill``, ``evaluate``, ``kd``, ``bench``. Errors of type
:class:`MMDistillError` print one line naming the file/field and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", default=None, help="data root (default: $MMDISTILL_DATA, then ../shared/data)")


def _cmd_data(args: argparse.Namespace) -> int:
    from .data import dataset_names
    from .data.info import dataset_info

    if args.data_cmd == "list":
        for name in dataset_names():
            print(name)
        return 0
    info = dataset_info(args.name, data_root=args.data_root)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        from .data.info import format_info

        print(format_info(info))
    return 0


def _distill_base_config(args: argparse.Namespace) -> str | None:
    """The config file a distill starts from: --config; else, for ``--resume`` without --method/--dataset, the
    run's own config.yaml; else the shipped config of (method, dataset) (named on stderr); else none (the
    method's dataclass defaults)."""
    if args.config:
        return args.config
    if args.resume and (args.method is None or args.dataset is None):
        own = Path(args.out or "") / "config.yaml"
        if args.out and own.is_file():
            return str(own)
        from .errors import ConfigError

        raise ConfigError(f"--resume without --method/--dataset reads RUN/config.yaml, but {own} does not exist "
                          "(give --out RUN of an existing run)")
    from .shipped import shipped_config

    c = shipped_config(args.method, args.dataset) if args.method and args.dataset else None
    if c is not None:
        print(f"mmdistill: using the shipped config {c.rel()} (a quick CPU setting; --config FILE to choose another)",
              file=sys.stderr)
        return str(c.path)
    if args.method and args.dataset:
        print(f"mmdistill: no shipped config for {args.method} on {args.dataset}: using the method's defaults "
              "(paper scale; `mmdistill configs` lists the shipped ones)", file=sys.stderr)
    return None


def _cmd_distill(args: argparse.Namespace) -> int:
    from .runs import distill, evaluate_run, resolve_run_config

    cfg = resolve_run_config(_distill_base_config(args), args.set, method=args.method, dataset=args.dataset,
                             ipc=args.ipc, pairs=args.pairs, seed=args.seed, device=args.device)
    run_dir, syn = distill(cfg, args.out, data_root=args.data_root, resume=args.resume, overwrite=args.overwrite,
                           progress=not args.quiet)
    b = syn.budget()
    print(f"run directory: {run_dir}")
    print(f"synthetic set: {len(syn)} rows, {b['stored_floats']} stored floats"
          + (f" = {b['pair_equivalents']:.2f} pair-equivalents" if "pair_equivalents" in b else ""))
    if args.evaluate:
        _print_results(evaluate_run(run_dir, data_root=args.data_root))
    return 0


def _distill_epilog() -> str:
    from .distill import method_names
    from .shipped import shipped_configs

    lines = ["methods: " + ", ".join(sorted(method_names())), "",
             "shipped configs (used when --config is absent; `mmdistill configs` shows budgets and measured times):"]
    lines += [f"  {c.method:10s} {c.dataset:16s} {c.rel()}" for c in shipped_configs() if c.is_default]
    return "\n".join(lines)


class _DistillHelp(argparse.Action):
    """``distill --help``: the usage plus the registered methods and the shipped configs (imported on demand)."""

    def __init__(self, option_strings, dest, **kw):  # noqa: ANN001 - argparse's signature
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show this help and exit")

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001
        parser.epilog = _distill_epilog()
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.print_help()
        parser.exit()


def _cmd_configs(args: argparse.Namespace) -> int:
    from .shipped import describe, shipped_configs

    rows = [describe(c) for c in shipped_configs() if args.all or c.is_default]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    cols = ["method", "dataset", "budget", "iterations", "measured", "config"]
    print(_table([[str(r[c]) for c in cols] for r in rows], cols))
    print("\nmeasured: median wall time of distil + 3-seed evaluation in the benchmark tables (benchmarks/*.json, "
          "2-core CPU box); distill uses the shipped config when --config is absent")
    return 0


def _table(rows: list[list[str]], header: list[str]) -> str:
    w = [max(len(x) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:{n}s}}" for n in w)
    return "\n".join(fmt.format(*r).rstrip() for r in [header, ["-" * n for n in w], *rows])


def _print_results(res) -> None:  # noqa: ANN001 - Results
    print(f"{res.method} on {res.dataset} ({res.extra.get('eval_arch')}): {res.line()}")
    base = res.extra.get("random_subset_same_size")
    if base:
        print("random subset, same size: " + "  ".join(f"{k} {v['mean']:.2f}±{v['std']:.2f}" for k, v in base["metrics"].items()))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .config import apply_overrides
    from .runs import evaluate_full, evaluate_run

    seeds = list(range(args.seeds)) if args.seeds else None
    if args.real:
        from .data import get_dataset_spec
        from .evaluate.reference import full_reference_dir
        from .runs import load_run_config

        like = load_run_config(args.like) if args.like else None
        dataset = args.dataset or (like.dataset if like else None)
        if not dataset:
            print("mmdistill evaluate --real needs --dataset NAME (or --like RUN_DIR)", file=sys.stderr)
            return 2
        data = dict(like.data) if like and like.dataset == dataset else {}
        fields = dict(like.eval) if like and like.dataset == dataset else {}
        if args.task and args.task != get_dataset_spec(dataset).info().get("task"):
            fields = {k: v for k, v in fields.items() if k == "seeds"}  # the run's fields belong to another protocol
        overrides = [f"{k}={json.dumps(v)}" for k, v in fields.items()] + list(args.set)
        out = args.run_dir or full_reference_dir(dataset, data, apply_overrides(fields, args.set))
        res = evaluate_full(dataset, out, data=data, arch=args.arch, seeds=seeds, overrides=overrides,
                            data_root=args.data_root, task=args.task)
        args.dataset = dataset
        print(f"full training set ({args.dataset}): {res.line()}")
        print(f"results: {Path(out)}")
        return 0
    if not args.run_dir:
        print("mmdistill evaluate needs RUN_DIR (or --real --dataset NAME)", file=sys.stderr)
        return 2
    _print_results(evaluate_run(args.run_dir, arch=args.arch, seeds=seeds, overrides=args.set, baseline=not args.no_baseline,
                                data_root=args.data_root, task=args.task))
    return 0


def _cmd_experts(args: argparse.Namespace) -> int:
    from .experts_cli import train_from_config

    buf = train_from_config(args.config, args.set, dataset=args.dataset, out=args.out, data_root=args.data_root,
                            progress=not args.quiet)
    m = buf.manifest
    print(f"expert buffer: {buf.path} ({buf.num_experts} experts x {buf.epochs} epochs, mode {m['mode']}, "
          f"{sum(buf.sizes)} parameters: image {buf.sizes[0]}, text {buf.sizes[1]})")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench.runner import forget_rows, run_suite

    if args.forget or args.prune:
        removed = forget_rows(args.suite, Path(args.out), args.forget, args.prune, args.suites, args.configs)
        print(f"[bench] removed the rows of {len(removed)} cell(s) from benchmarks/{args.suite}.json"
              + "".join(f"\n  {c}" for c in removed))
        return 0
    run_suite(args.suite, out_dir=Path(args.out), only=args.only, jobs=args.jobs, data_root=args.data_root,
              render_only=args.render_only, suites_dir=args.suites, configs_dir=args.configs)
    return 0


def _cmd_kd(args: argparse.Namespace) -> int:
    from .config import load_config
    from .kd.config import KDRunConfig
    from .kd.trainer import run_kd

    cli = {k: v for k, v in {"teacher_modality": args.teacher_modality, "student_modality": args.student_modality,
                             "method": args.method, "dataset": args.dataset, "device": args.device}.items() if v is not None}
    overrides = list(args.set) + [f"{k}={json.dumps(v)}" for k, v in cli.items()]  # CLI flags win over the file
    if args.seed is not None:
        overrides.append(f"seeds=[{args.seed}]")
    cfg = load_config(KDRunConfig, args.config, overrides)
    out = args.out or f"runs/kd-{cfg.method}-{cfg.dataset}-{cfg.teacher_modality}2{cfg.student_modality}"
    res = run_kd(cfg, out, data_root=args.data_root)
    print(f"{cfg.method} {cfg.teacher_modality} -> {cfg.student_modality} on {cfg.dataset}: {res.line()}")
    print(f"results: {Path(out) / 'results.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mmdistill", description="Multimodal dataset distillation and cross-modal KD")
    sub = ap.add_subparsers(dest="cmd", required=True)

    d = sub.add_parser("data", help="list datasets or describe one")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    dl = dsub.add_parser("list")
    _add_common(dl)
    di = dsub.add_parser("info")
    di.add_argument("name")
    di.add_argument("--json", action="store_true", help="the full record as JSON")
    _add_common(di)
    d.set_defaults(func=_cmd_data)

    p = sub.add_parser("distill", help="distil (or select) a synthetic set into a run directory", add_help=False,
                       description="Distil (or select) a synthetic set into a run directory. Without --config the "
                       "shipped config of (method, dataset) is used when there is one.")
    p.add_argument("-h", "--help", action=_DistillHelp)
    p.add_argument("--method")
    p.add_argument("--dataset")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ipc", type=int, help="pairs per class")
    g.add_argument("--pairs", type=int, help="pairs overall")
    p.add_argument("--config", help="run config YAML")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["cpu", "cuda"], default=None)
    p.add_argument("--out", help="run directory (default runs/<method>-<dataset>-<budget>-s<seed>)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run directory's checkpoint (without --method/--dataset: its config.yaml); "
                   "only the iteration count and learning rates may change")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in a non-empty --out (its set, checkpoint, results, eval/, report, plots)")
    p.add_argument("--evaluate", action="store_true", help="evaluate the set afterwards")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_common(p)
    p.set_defaults(func=_cmd_distill)

    cf = sub.add_parser("configs", help="list the shipped run configs (budget, iterations, measured time)")
    cf.add_argument("--all", action="store_true", help="also list variants and paper-scale configs")
    cf.add_argument("--json", action="store_true", help="machine-readable rows")
    cf.set_defaults(func=_cmd_configs)

    e = sub.add_parser("evaluate", help="evaluate a run directory (or the full training set with --real)")
    e.add_argument("run_dir", nargs="?")
    e.add_argument("--arch", help="evaluation architecture (any registered net) for cross-architecture results")
    e.add_argument("--seeds", type=int, help="number of evaluation seeds (default 3)")
    e.add_argument("--real", action="store_true", help="evaluate the full training set (upper bound)")
    e.add_argument("--dataset", help="dataset for --real")
    e.add_argument("--like", metavar="RUN_DIR", help="--real: the dataset, data parameters and protocol fields of this "
                   "run (the reference its report shows; cached under $MMDISTILL_CACHE/full-data/ unless RUN_DIR given)")
    e.add_argument("--no-baseline", action="store_true", help="skip the same-size random subset")
    e.add_argument("--task", choices=["classification", "retrieval"],
                   help="evaluation task (default: the dataset's); retrieval on an audio-visual run trains fresh "
                   "audio and visual encoders with InfoNCE and writes results.retrieval.json (a2i/i2a R@1/5/10)")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a protocol field")
    _add_common(e)
    e.set_defaults(func=_cmd_evaluate)

    k = sub.add_parser("kd", help="cross-modal knowledge distillation: teacher on one modality, student on another")
    k.add_argument("--teacher-modality", help="modality the (cached) teacher is trained on, e.g. audio, text")
    k.add_argument("--student-modality", help="modality the student is trained and tested on, e.g. visual, image")
    k.add_argument("--method", help="no-kd, kd, dkd, dist, fitnet, pkd, c2kd, fd-cmkd, fd-cmkd-permuted, "
                   "fd-cmkd-heads-only, fd-cmkd-learned-split")
    k.add_argument("--dataset")
    k.add_argument("--config", help="KD run config YAML (configs/kd/)")
    k.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    k.add_argument("--seed", type=int, help="run this one seed (default: the config's seeds)")
    k.add_argument("--device", choices=["cpu", "cuda"], default=None)
    k.add_argument("--out", help="run directory (default runs/kd-<method>-<dataset>-<teacher>2<student>)")
    _add_common(k)
    k.set_defaults(func=_cmd_kd)

    x = sub.add_parser("experts", help="train (or finish) an expert trajectory buffer for trajectory matching")
    x.add_argument("--dataset", help="dataset (default: 'dataset:' of the config)")
    x.add_argument("--config", required=True, help="run config YAML with params.experts (or a top-level 'experts:')")
    x.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (repeatable)")
    x.add_argument("--out", help="buffer directory (default: params.buffer, else the cache path)")
    x.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_common(x)
    x.set_defaults(func=_cmd_experts)

    b = sub.add_parser("bench", help="run a benchmark suite; writes benchmarks/<suite>.json and BENCHMARKS.md")
    b.add_argument("--suite", default="quick")
    b.add_argument("--out", default=".", help="repository root to write benchmarks/ and BENCHMARKS.md into")
    b.add_argument("--only", action="append", default=None, help="run only cells whose id contains this text")
    b.add_argument("--jobs", type=int, default=2,
                   help="cells run in parallel (processes); each gets cores/jobs threads unless OMP_NUM_THREADS is set")
    b.add_argument("--render-only", action="store_true", help="re-render BENCHMARKS.md from benchmarks/*.json")
    b.add_argument("--forget", action="append", default=None, metavar="TEXT",
                   help="remove the rows of cells whose id contains TEXT (measured with a method version that no "
                        "longer exists), re-render, run nothing")
    b.add_argument("--prune", action="store_true",
                   help="remove the rows of cells the suite no longer defines, re-render, run nothing")
    b.add_argument("--suites", help="directory of suite files <suite>.yaml (default: OUT/benchmarks/suites)")
    b.add_argument("--configs", help="directory of the shipped run configs (default: OUT/configs)")
    _add_common(b)
    b.set_defaults(func=_cmd_bench)

    # Subcommands owned by their own packages (each module's add_parsers(sub) registers them).
    from .report.cli import add_parsers as _add_report_parsers
    from .sweep_cli import add_parsers as _add_sweep_parsers

    _add_report_parsers(sub)
    _add_sweep_parsers(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    from .errors import MMDistillError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MMDistillError as e:
        print(f"mmdistill: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt as e:  # a run says what it kept (RunInterrupted); elsewhere finished steps are on disk
        print(f"mmdistill: {e.args[0] if e.args else 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
