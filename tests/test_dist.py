"""Scale-out (ecosystem.md §C): job lists and DM class sharding under 2 gloo CPU processes equal one process.

The ``launch2`` fixture starts 2 workers with ``torch.distributed.launcher.api.elastic_launch`` (c10d
rendezvous on localhost, a free port, no restarts), the torchtune-style CPU fixture of §C.4. Hangs are
bounded twice: collectives time out (``MMDISTILL_DIST_TIMEOUT``) and every worker arms a faulthandler
watchdog that kills it, so a stuck rank fails the test instead of blocking CI.
"""

from __future__ import annotations

import faulthandler
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from av_fixtures import NET as AV_NET, register_tiny
from mmdistill.config import from_dict
from mmdistill.dist import context as dctx
from mmdistill.dist.jobs import Job, JobError, json_job, main_first, read_json, run_jobs, shard
from mmdistill.experts.buffers import ExpertConfig, train_experts
from vl_fixtures import experts_cfg, tiny_retrieval

WORKER_TIMEOUT_S = 90
EVAL = {"seeds": [0, 1], "epochs": 1, "min_steps": 4, "width": 8, "depth": 2, "batch_size": 16}


# ------------------------------------------------------------------------------------------------ fixture
def _worker(fn, args):  # module level: pickled by name into the spawned workers
    faulthandler.dump_traceback_later(WORKER_TIMEOUT_S, exit=True)  # a hung rank dies (and fails the launch)
    torch.set_num_threads(1)
    try:
        return fn(*args)
    finally:
        faulthandler.cancel_dump_traceback_later()
        dctx.shutdown()


@pytest.fixture
def launch2(monkeypatch, tmp_path):
    """``launch2(fn, *args) -> {rank: return value}`` over 2 CPU processes (gloo)."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    monkeypatch.setenv("MMDISTILL_DIST_TIMEOUT", "60")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))

    def launch(fn, *args):
        cfg = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=2, run_id=f"test-{uuid.uuid4().hex[:8]}",
                           rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                           rdzv_timeout=30)
        return elastic_launch(cfg, _worker)(fn, args)

    return launch


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


# ------------------------------------------------------------------------------------------------ (1) expert buffers
def _experts_worker(out):
    cfg = from_dict(ExpertConfig, experts_cfg("full", num_experts=3))
    train_experts(tiny_retrieval(), cfg, out, progress=False)
    return dctx.rank(), dctx.world()


def test_expert_jobs_two_ranks_equal_one_process_and_resume(tmp_path, launch2, monkeypatch):
    one, two = tmp_path / "one", tmp_path / "two"
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))
    train_experts(tiny_retrieval(), from_dict(ExpertConfig, experts_cfg("full", num_experts=3)), one, progress=False)
    two.mkdir()
    shutil.copy(one / "expert_000.safetensors", two / "expert_000.safetensors")  # finished before a kill
    stamp = os.stat(two / "expert_000.safetensors").st_mtime_ns
    assert launch2(_experts_worker, str(two)) == {0: (0, 2), 1: (1, 2)}
    assert os.stat(two / "expert_000.safetensors").st_mtime_ns == stamp  # skipped on resume
    names = sorted(p.name for p in one.iterdir() if not p.name.startswith("."))
    assert names == sorted(p.name for p in two.iterdir() if not p.name.startswith("."))
    for k in range(3):
        a, b = load_file(str(one / f"expert_{k:03d}.safetensors")), load_file(str(two / f"expert_{k:03d}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)  # bitwise
    assert json.loads((one / "manifest.json").read_text()) == json.loads((two / "manifest.json").read_text())


# ------------------------------------------------------------------------------------------------ (2) evaluation sweep
def _make_runs(root: Path) -> list[Path]:
    from mmdistill.runs import distill, resolve_run_config

    register_tiny()
    runs = []
    for seed in (0, 1):
        cfg = resolve_run_config(None, [], method="random", dataset="tiny-av", ipc=2, seed=seed)
        cfg.eval = dict(EVAL)
        run_dir, _ = distill(cfg, root / f"random-s{seed}", progress=False)
        runs.append(run_dir)
    return runs


def _sweep_worker(run_dirs):
    from mmdistill.cli import main

    register_tiny()
    return main(["sweep", *run_dirs, "--arch", "convnet", "--arch", "lenet"])


def _results(run_dir: Path, name: str) -> dict:
    d = json.loads((run_dir / name).read_text())
    d.pop("eval_wall_s")
    return d


def test_eval_sweep_two_ranks_equal_one_process_and_resume(tmp_path, launch2):
    from mmdistill.data import load_dataset
    from mmdistill.dist.sweep import sweep
    from mmdistill.evaluate.protocol import default_protocol, evaluate_random_baseline, evaluate_set
    from mmdistill.synth import SyntheticSet

    one = _make_runs(tmp_path / "one")
    two = [tmp_path / "two" / r.name for r in one]
    for a, b in zip(one, two):
        shutil.copytree(a, b)
    sweep(one, ["convnet", "lenet"])  # one process
    (two[1] / "eval" / "lenet").mkdir(parents=True)
    shutil.copy(one[1] / "eval" / "lenet" / "seed1.json", two[1] / "eval" / "lenet" / "seed1.json")  # finished earlier
    stamp = os.stat(two[1] / "eval" / "lenet" / "seed1.json").st_mtime_ns
    assert launch2(_sweep_worker, [str(r) for r in two]) == {0: 0, 1: 0}
    assert os.stat(two[1] / "eval" / "lenet" / "seed1.json").st_mtime_ns == stamp  # skipped on resume
    for a, b in zip(one, two):
        for name in ("results.convnet.json", "results.lenet.json"):
            assert _results(a, name) == _results(b, name)  # same floats, same order
    # ... and the same numbers the one-process all-seeds evaluation computes
    tr, te = load_dataset("tiny-av", "train"), load_dataset("tiny-av", "test")
    proto = default_protocol("classification", arch="lenet", **EVAL)
    syn = SyntheticSet.load(one[0])
    ref, base = evaluate_set(syn, tr, te, proto), evaluate_random_baseline(syn, tr, te, proto)
    got = _results(two[0], "results.lenet.json")
    assert got["metrics"] == ref.metrics and got["random_subset_same_size"]["metrics"] == base.metrics
    assert got["protocol"] == json.loads(json.dumps(ref.protocol))


# ------------------------------------------------------------------------------------------------ (3) DM class sharding
def _dm_cfg(method: str, mode: str):
    from mmdistill.runs import resolve_run_config

    register_tiny()
    params = {"iterations": 3, "batch_real": 8, "init": "real", "net": dict(AV_NET), "step_mode": mode, "factor": 2}
    cfg = resolve_run_config(None, [], method=method, dataset="tiny-av", ipc=2, seed=3)
    cfg.params = params
    cfg.run.checkpoint_every = 2
    return cfg


def _dm_worker(root):
    from mmdistill.runs import distill

    out = {}
    for method, mode in (("dm", "summed"), ("avdd", "per_class")):
        _, syn = distill(_dm_cfg(method, mode), Path(root) / f"{method}-{mode}", progress=False)
        out[f"{method}-{mode}"] = {m: t.sum().item() for m, t in syn.tensors.items()}
    return out


def _log(run_dir: Path) -> list[dict]:
    drop = {"s_per_iter", "time"}
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_dm_class_sharding_two_ranks_equals_one_process(tmp_path, launch2):
    from mmdistill.runs import distill

    for method, mode in (("dm", "summed"), ("avdd", "per_class")):
        distill(_dm_cfg(method, mode), tmp_path / "one" / f"{method}-{mode}", progress=False)
    ret = launch2(_dm_worker, str(tmp_path / "two"))
    assert ret[0] == ret[1]  # every rank ends with the same synthetic set
    for name in ("dm-summed", "avdd-per_class"):
        a, b = tmp_path / "one" / name, tmp_path / "two" / name
        sa, sb = load_file(str(a / "synthetic.safetensors")), load_file(str(b / "synthetic.safetensors"))
        assert all(torch.equal(sa[k], sb[k]) for k in sa)  # bitwise: each leaf's gradient comes from one rank
        assert _log(a) == _log(b)  # per-class logs summed in class order; only rank 0 wrote the log
        ca = torch.load(a / "checkpoint" / "state.pt", weights_only=False)["distiller"]
        cb = torch.load(b / "checkpoint" / "state.pt", weights_only=False)["distiller"]
        assert all(torch.equal(x, y) for m in ca["syn"] for x, y in zip(ca["syn"][m], cb["syn"][m]))
        assert yaml.safe_load((a / "config.yaml").read_text()) == yaml.safe_load((b / "config.yaml").read_text())
