"""Scale-out (ecosystem.md §C): job lists and DM class sharding under 2 gloo CPU processes equal one process.

``launch2`` starts 2 workers with ``torch.distributed.launcher.api.elastic_launch`` (c10d rendezvous on
localhost port 0 = a free port, no restarts), the torchtune-style CPU fixture of §C.4; the module fixture
``dist_run`` launches once and runs all three workloads (expert buffer + DAVDD bank job lists, an evaluation
sweep through the CLI, DM/AVDD class sharding). Hangs are bounded three times: collectives time out
(``MMDISTILL_DIST_TIMEOUT``), every worker arms a faulthandler watchdog that kills it, and pytest-timeout.
"""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import os
import shutil
import uuid
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from av_fixtures import NET as AV_NET, register_tiny
from mmdistill.config import from_dict
from mmdistill.parallel import context as dctx
from mmdistill.parallel.jobs import Job, JobError, json_job, main_first, read_json, run_jobs, shard
from mmdistill.experts.buffers import ExpertConfig, train_experts
from vl_fixtures import experts_cfg, tiny_retrieval

WORKER_TIMEOUT_S = 120
pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]  # slow: multi-process (torchrun-style workers)
EVAL = {"seeds": [0, 1], "epochs": 1, "min_steps": 4, "width": 8, "depth": 2, "batch_size": 16}


# ------------------------------------------------------------------------------------------------ launcher
def _worker(fn, args):  # module level: pickled by name into the spawned workers
    faulthandler.dump_traceback_later(WORKER_TIMEOUT_S, exit=True)  # a hung rank dies (and fails the launch)
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        faulthandler.cancel_dump_traceback_later()
        dctx.shutdown()


def launch2(fn, *args):
    """``fn(*args)`` in 2 CPU processes (gloo) via ``elastic_launch``; returns ``{rank: return value}``."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    cfg = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=2, run_id=f"test-{uuid.uuid4().hex[:8]}",
                       rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                       rdzv_timeout=30)
    return elastic_launch(cfg, _worker)(fn, args)


# ------------------------------------------------------------------------------------------------ job list, one process
def test_job_list_shards_skips_finished_and_reports_failures(tmp_path):
    assert list(shard(7, 0, 2)) == [0, 2, 4, 6] and list(shard(7, 1, 2)) == [1, 3, 5] and list(shard(2, 0, 1)) == [0, 1]
    ran = []

    def job(i):
        p = tmp_path / f"out{i}.json"
        return json_job(f"j{i}", p, lambda: (ran.append(i), {"value": i})[1], key="k")

    (tmp_path / "out1.json").write_text(json.dumps({"key": "k", "value": 1}))  # finished by an earlier run
    (tmp_path / "out2.json").write_text(json.dumps({"key": "old", "value": -1}))  # stale key: redone
    rep = run_jobs([job(i) for i in range(4)], gather=lambda: sorted(read_json(tmp_path / f"out{i}.json")["value"]
                                                                     for i in range(4)))
    assert ran == [0, 2, 3] and rep.ran == ["j0", "j2", "j3"] and rep.skipped == ["j1"] and rep.value == [0, 1, 2, 3]
    assert run_jobs([job(i) for i in range(4)]).skipped == ["j0", "j1", "j2", "j3"]
    with pytest.raises(JobError, match="duplicate job ids"):
        run_jobs([job(0), job(0)])
    with pytest.raises(JobError, match="without a valid output"):
        run_jobs([Job("lazy", (tmp_path / "never",), lambda: None)])
    with pytest.raises(ZeroDivisionError):
        run_jobs([Job("bad", (tmp_path / "x",), lambda: 1 / 0)])
    assert main_first(lambda: 5) == 5 and dctx.context() == dctx.DistContext()  # not launched: a world of one


def test_context_env_mapping_and_backend(monkeypatch):
    assert dctx.slurm_env({"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1"}) == \
        {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    assert dctx.slurm_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == {}  # one task: not distributed
    assert dctx.slurm_env({"RANK": "0", "SLURM_PROCID": "2", "SLURM_NTASKS": "4"}) == {}  # torchrun wins
    monkeypatch.delenv("MMDISTILL_DIST_BACKEND", raising=False)
    assert dctx.backend_for("cpu") == "gloo"
    if not torch.cuda.is_available():
        assert dctx.backend_for("cuda") == "gloo"  # never a hard-coded nccl without CUDA
    monkeypatch.setenv("MMDISTILL_DIST_BACKEND", "mpi")
    assert dctx.backend_for("cpu") == "mpi"


# ------------------------------------------------------------------------------------------------ the three workloads
BANK = {"num_seeds": 3, "snapshot_epochs": [1, 2], "batch_size": 32}
DEC = {"hidden": 16, "dim": 8, "epochs": 2, "batch_size": 32}
DM_RUNS = (("dm", "summed"), ("avdd", "per_class"))


def _buffer_and_bank(root: Path) -> int:
    """(1) job lists: an expert buffer (3 experts) and a DAVDD bank (3 seeds, 6 decouplers)."""
    from av_fixtures import tiny_av
    from mmdistill.distill.av_common import AVNetConfig
    from mmdistill.experts.bank import BankConfig, DecouplerConfig, EncoderBank

    cfg = experts_cfg("full", num_experts=3, epochs=2, encoder_init="random")
    train_experts(tiny_retrieval(), from_dict(ExpertConfig, cfg), root / "experts", progress=False)
    bank = EncoderBank(tiny_av(), AVNetConfig(**AV_NET), from_dict(BankConfig, {**BANK, "path": str(root / "bank")}))
    return len(bank.ensure_decouplers(from_dict(DecouplerConfig, DEC)))


def _reference_buffer_and_bank(root: str) -> None:  # module level: run by name in a spawned process
    torch.set_num_threads(1)
    register_tiny()
    n = _buffer_and_bank(Path(root))
    if n != 6:
        raise SystemExit(f"expected 6 decouplers, got {n}")


def _make_runs(root: Path) -> list[Path]:
    from mmdistill.runs import distill, resolve_run_config

    runs = []
    for seed in (0, 1):
        cfg = resolve_run_config(None, [], method="random", dataset="tiny-av", ipc=2, seed=seed)
        cfg.eval = dict(EVAL)
        runs.append(distill(cfg, root / "runs" / f"random-s{seed}", progress=False)[0])
    return runs


def _sweep_cli(root: Path) -> int:
    """(2) ``mmdistill sweep`` over 2 run dirs x 2 archs x 2 seeds (+ the random-subset baseline)."""
    from mmdistill.cli import main

    return main(["sweep", *(str(r) for r in sorted((root / "runs").iterdir())), "--arch", "convnet", "--arch", "lenet"])


def _dm_cfg(method: str, mode: str):
    from mmdistill.runs import resolve_run_config

    cfg = resolve_run_config(None, [], method=method, dataset="tiny-av", ipc=2, seed=3)
    cfg.params = {"iterations": 3, "batch_real": 8, "init": "real", "net": dict(AV_NET), "step_mode": mode, "factor": 2}
    cfg.run.checkpoint_every = 2
    return cfg


def _dm(root: Path) -> dict[str, float]:
    """(3) DM (summed step) and AVDD (per-class steps), classes sharded over the ranks."""
    from mmdistill.runs import distill

    out = {}
    for method, mode in DM_RUNS:
        _, syn = distill(_dm_cfg(method, mode), root / "dm" / f"{method}-{mode}", progress=False)
        out[f"{method}-{mode}"] = sum(float(t.double().sum()) for t in syn.tensors.values())
    return out


def _dm_killed_and_resumed(root: Path) -> None:
    """(3b) a 2-rank DM run stopped after 2 of 3 iterations (checkpoint at 2), then resumed by 2 ranks."""
    from mmdistill.runs import distill

    out = root / "dm" / "dm-summed-resumed"
    distill(_dm_cfg("dm", "summed"), out, progress=False, stop_after=2)
    distill(_dm_cfg("dm", "summed"), out, progress=False, resume=True)


def _failures(root: Path) -> list[str]:
    """A job failing on rank 1 and a rank-0 setup failing: every rank raises (nobody hangs in a collective)."""
    def boom(i: int) -> None:
        raise ValueError(f"job {i} broke")

    out = []
    jobs = [Job(f"ok{i}", (root / f"ok{i}",), lambda i=i: (root / f"ok{i}").write_text("x")) for i in (0, 2)]
    jobs.insert(1, Job("bad1", (root / "bad1",), lambda: boom(1)))
    for fn in (lambda: run_jobs(jobs, desc="failing list"), lambda: main_first(lambda: boom(0) if dctx.is_main() else 1)):
        try:
            fn()
            out.append("no error")
        except Exception as e:  # noqa: BLE001
            out.append(f"{type(e).__name__}: {e}")
    return out


def _all(root: str):
    register_tiny()
    root = Path(root)
    out = dctx.rank(), dctx.world(), _buffer_and_bank(root), _sweep_cli(root), _dm(root), _failures(root)
    _dm_killed_and_resumed(root)
    return out


@pytest.fixture(scope="module")
def dist_run(tmp_path_factory):
    """One process computes every reference into ``one/``; ``two/`` is seeded with a few finished outputs (as if a
    run had been killed) and then done by ONE 2-rank launch (startup is the dominant cost on a shared 2-core box)."""
    from mmdistill.runs import sweep

    root = tmp_path_factory.mktemp("dist")
    one, two = root / "one", root / "two"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMDISTILL_CACHE", str(root / "cache"))
        mp.setenv("MMDISTILL_DIST_TIMEOUT", "60")
        mp.setenv("OMP_NUM_THREADS", "1")
        register_tiny()
        # the one-process reference runs in a FRESH process, like the ranks: in the long-lived pytest process (after
        # hundreds of tests) CPU kernels can see differently aligned buffers and round differently (seen on the first
        # full-suite run of fresh clones), which is not what "equal to the single-process run" is about
        ref = multiprocessing.get_context("spawn").Process(target=_reference_buffer_and_bank, args=(str(one),))
        ref.start()
        ref.join(WORKER_TIMEOUT_S)
        assert ref.exitcode == 0, f"reference process failed (exit {ref.exitcode})"
        runs = _make_runs(one)
        for r in runs:
            shutil.copytree(r, two / "runs" / r.name)
        sweep(runs, ["convnet", "lenet"])
        ref_dm = _dm(one)
        kept = [Path("experts/expert_000.safetensors"), Path("bank/pair_000.safetensors"), Path("bank/pair_001.safetensors"),
                Path("runs/random-s1/eval/lenet/seed1.json")]  # finished before a "kill"; the bank pairs are unrecorded
        for attempt in range(2):  # one retry: a gloo recv timeout on the shared 2-core box fails the launch (seen ~1 in 10)
            if attempt:
                two = root / "two-retry"
                for r in runs:
                    shutil.copytree(r, two / "runs" / r.name, ignore=shutil.ignore_patterns("eval", "results*.json"))
            for k in kept:
                (two / k).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(one / k, two / k)
            stamps = {k: os.stat(two / k).st_mtime_ns for k in kept}
            try:
                ret = launch2(_all, str(two))
                break
            except Exception as e:  # noqa: BLE001 - ChildFailedError; the second failure is raised
                if attempt:
                    raise
                warnings.warn(f"2-rank launch failed, retrying once in a fresh directory: {str(e)[:300]}")
    return {"one": one, "two": two, "ret": ret, "ref_dm": ref_dm, "stamps": stamps}


def test_two_ranks_ran_and_skipped_finished_jobs(dist_run):
    ret = dist_run["ret"]
    assert {r: v[:4] for r, v in ret.items()} == {0: (0, 2, 6, 0), 1: (1, 2, 6, 0)}
    two = dist_run["two"]
    assert {k: os.stat(two / k).st_mtime_ns for k in dist_run["stamps"]} == dist_run["stamps"]  # skipped on resume


def test_a_failure_on_one_rank_raises_on_every_rank(dist_run):
    r0, r1 = dist_run["ret"][0][5], dist_run["ret"][1][5]
    assert r1[0] == "ValueError: job 1 broke"  # the failing rank re-raises its own error
    assert r0[0].startswith("JobError: failing list: rank 1 failed job 'bad1': ValueError: job 1 broke")
    assert r0[1] == "ValueError: job 0 broke" and r1[1] == "JobError: setup: rank 0 failed: ValueError: job 0 broke"


def test_expert_buffer_and_bank_two_ranks_equal_one_process(dist_run):
    one, two = dist_run["one"], dist_run["two"]
    names = sorted(p.name for p in (one / "experts").iterdir() if not p.name.startswith("."))
    assert names == sorted(p.name for p in (two / "experts").iterdir() if not p.name.startswith("."))
    for k in range(3):
        a = load_file(str(one / "experts" / f"expert_{k:03d}.safetensors"))
        b = load_file(str(two / "experts" / f"expert_{k:03d}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)  # bitwise
    for sub in ("experts", "bank"):  # the bank manifest holds every pair's and decoupler's sha256: bitwise too
        assert _timeless(json.loads((one / sub / "manifest.json").read_text())) == \
            _timeless(json.loads((two / sub / "manifest.json").read_text()))


def _timeless(d):
    """A manifest without its measured training times (wall clock differs between runs; the hashes may not)."""
    if isinstance(d, dict):
        return {k: _timeless(v) for k, v in d.items() if k != "train_seconds"}
    return d


def _results(run_dir: Path, name: str) -> dict:
    d = json.loads((run_dir / name).read_text())
    d.pop("eval_wall_s")
    return d


def test_eval_sweep_two_ranks_equal_one_process(dist_run):
    from mmdistill.data import load_dataset
    from mmdistill.evaluate.protocol import default_protocol, evaluate_random_baseline, evaluate_set
    from mmdistill.synth import SyntheticSet

    one, two = dist_run["one"] / "runs", dist_run["two"] / "runs"
    for run in ("random-s0", "random-s1"):
        for name in ("results.convnet.json", "results.lenet.json"):
            assert _results(one / run, name) == _results(two / run, name)  # same floats, same order
    # ... and the numbers the one-process all-seeds evaluation (the code path before job lists) computes
    register_tiny()
    tr, te = load_dataset("tiny-av", "train"), load_dataset("tiny-av", "test")
    proto = default_protocol("classification", arch="lenet", **EVAL)
    syn = SyntheticSet.load(one / "random-s0")
    ref, base = evaluate_set(syn, tr, te, proto), evaluate_random_baseline(syn, tr, te, proto)
    got = _results(two / "random-s0", "results.lenet.json")
    assert got["metrics"] == ref.metrics and got["random_subset_same_size"]["metrics"] == base.metrics
    assert got["protocol"] == json.loads(json.dumps(ref.protocol))


def _log(run_dir: Path) -> list[dict]:
    drop = {"s_per_iter", "time"}
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_dm_class_sharding_two_ranks_equals_one_process(dist_run):
    ret = dist_run["ret"]
    assert ret[0][4] == ret[1][4] == dist_run["ref_dm"]  # every rank ends with the one-process set
    for method, mode in DM_RUNS:
        a, b = dist_run["one"] / "dm" / f"{method}-{mode}", dist_run["two"] / "dm" / f"{method}-{mode}"
        sa, sb = load_file(str(a / "synthetic.safetensors")), load_file(str(b / "synthetic.safetensors"))
        assert all(torch.equal(sa[k], sb[k]) for k in sa)  # bitwise: each leaf's gradient comes from one rank
        assert _log(a) == _log(b)  # per-class logs summed in class order; only rank 0 wrote the log
        ca = torch.load(a / "checkpoint" / "state.pt", weights_only=False)["distiller"]
        cb = torch.load(b / "checkpoint" / "state.pt", weights_only=False)["distiller"]
        assert all(torch.equal(x, y) for m in ca["syn"] for x, y in zip(ca["syn"][m], cb["syn"][m]))
        assert yaml.safe_load((a / "config.yaml").read_text()) == yaml.safe_load((b / "config.yaml").read_text())


def test_torchrun_cli_smoke(dist_run, tmp_path):
    """The user-facing path (ecosystem.md §C.4): ``torchrun --standalone --nproc_per_node 2`` running
    ``python -m mmdistill sweep``; rank 0 alone prints, workers end cleanly, results equal one process."""
    import subprocess
    import sys

    src = dist_run["one"] / "runs" / "random-s0"
    run = tmp_path / "random-s0"
    shutil.copytree(src, run, ignore=shutil.ignore_patterns("eval", "results*"))
    script = tmp_path / "mmdistill_with_tiny_av.py"  # python -m mmdistill, plus the test dataset registered
    script.write_text(f"import sys, runpy\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                      "from av_fixtures import register_tiny\nregister_tiny()\n"
                      "runpy.run_module('mmdistill', run_name='__main__')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MMDISTILL_DIST_TIMEOUT": "60"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
           "sweep", str(run), "--arch", "lenet", "--no-baseline"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=150)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("random on tiny-av") == 1, proc.stdout  # rank 0 prints, rank 1 is silent
    assert "2 evaluation jobs over 2 process(es): 2 run, 0 already finished" in proc.stdout
    got, want = _results(run, "results.lenet.json"), _results(src, "results.lenet.json")
    assert got["metrics"] == want["metrics"] and "random_subset_same_size" not in got


def test_dm_two_ranks_resume_is_bitwise(dist_run):
    a, b = dist_run["one"] / "dm" / "dm-summed", dist_run["two"] / "dm" / "dm-summed-resumed"
    sa, sb = load_file(str(a / "synthetic.safetensors")), load_file(str(b / "synthetic.safetensors"))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    log = _log(b)
    assert [r.get("event") for r in log if "event" in r] == ["start", "resume", "done"]
    assert [r for r in log if "event" not in r] == [r for r in _log(a) if "event" not in r]
