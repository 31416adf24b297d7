"""The prepared GPU script runs end to end at tiny shapes on the CPU and writes the JSON the GPU section reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "benchmarks" / "gpu"
sys.path.insert(0, str(GPU))

import refdrive  # noqa: E402  (benchmarks/gpu/refdrive.py)

ROW_KEYS = {"name", "family", "impl", "shapes", "status", "wall_s"}
OK_KEYS = {"s_per_iter", "s_per_iter_all", "warmup_s", "timed_iters", "peak_bytes"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.mark.slow
def test_measure_tiny_writes_the_schema(tmp_path):
    out = tmp_path / "gpu.json"
    junit = tmp_path / "t.xml"
    junit.write_text('<testsuites><testsuite tests="3" failures="1" errors="0" skipped="0">'
                     '<testcase classname="a" name="t1"/><testcase classname="a" name="t2"><failure/></testcase>'
                     '<testcase classname="a" name="t3"/></testsuite></testsuites>')
    r = subprocess.run([sys.executable, str(GPU / "measure.py"), "--tiny", "--iters", "1", "--out", str(out),
                        "--tests-xml", str(junit)], env=_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["schema"] == "mmdistill.gpu_bench" and doc["version"] == 1 and doc["tiny"] is True
    assert doc["device"]["type"] == "cpu" and doc["torch"] and "cuda" in doc and doc["finished"]
    assert doc["tests"]["tests"] == 3 and doc["tests"]["failures"] == 1 and doc["tests"]["failed"] == ["a::t2"]
    names = [row["name"] for row in doc["rows"]]
    for want in ("dm-ipc1", "avdd-ipc2", "davdd-ipc1", "expert-step-full", "expert-step-heads", "mtt-vl",
                 "mtt-vl-reverse", "tesla-vl-2steps", "tesla-vl-4steps", "lors", "repblend", "mdm"):
        assert want in names, want
    for row in doc["rows"]:
        assert ROW_KEYS <= set(row), row
        assert row["status"] == "ok", row
        assert OK_KEYS <= set(row) and row["s_per_iter"] > 0 and row["peak_bytes"] > 0
    tr = doc["expert_trajectory"]
    assert tr["steps_per_trajectory"] == 10 * 1133 and tr["full_min"] > 0 and tr["heads_features_once_min"] > 0
    # the GPU section treats a CPU smoke run as pending
    from mmdistill.bench import gpu_section

    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "gpu.json").write_text(out.read_text())
    assert "CPU smoke run" in "\n".join(gpu_section.section(tmp_path / "bench"))


def test_measure_budget_skips_and_reference_rows_merge(tmp_path):
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"rows": [{"name": "lors-reference", "family": "image-text", "impl": "reference",
                                         "shapes": {}, "status": "error", "error": "x", "wall_s": 0.1}]}))
    out = tmp_path / "gpu.json"
    r = subprocess.run([sys.executable, str(GPU / "measure.py"), "--tiny", "--only", "dm-ipc1,lors", "--budget-s", "0",
                        "--ref-rows", str(ref), "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {row["name"]: row for row in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"lors-reference", "dm-ipc1", "lors"}
    assert rows["dm-ipc1"]["status"] == "skipped" and rows["lors"]["status"] == "skipped"


def test_refdrive_command_lines_and_check(tmp_path):
    for impl, mb in (("lors", "40"), ("repblend", "20")):
        argv = refdrive.argv_for(impl, "/buf", 4)
        assert argv[0] == refdrive.IMPLS[impl]["script"]
        assert f"--mini_batch_size={mb}" in argv and "--num_queries" in argv and argv[argv.index("--num_queries") + 1] == "499"
        assert argv[argv.index("--Iteration") + 1] == "3" and argv[argv.index("--image_pretrained") + 1] == ""
        assert refdrive.check(impl, tmp_path) == [f"{tmp_path / refdrive.IMPLS[impl]['script']}: not found"]
    # a copy whose parser lacks a flag is reported before any GPU time is spent
    (tmp_path / "distill_repblend.py").write_text("from tqdm import tqdm\nfor it in tqdm(range(3)): pass\n'--dataset'\n")
    problems = refdrive.check("repblend", tmp_path)
    assert any("no argument --syn_steps" in p for p in problems) and any("src/networks.py" in p for p in problems)


@pytest.mark.parametrize("impl", sorted(refdrive.IMPLS))
def test_refdrive_check_on_the_local_copy(impl):
    ref = ROOT / ".gpu-ref" / impl
    if not ref.is_dir():
        pytest.skip(f"{ref} absent (bash benchmarks/gpu/get_refs.sh copies it; never committed)")
    assert refdrive.check(impl, ref) == []


@pytest.mark.slow
@pytest.mark.parametrize("impl", sorted(refdrive.IMPLS))
def test_refdrive_cpu_dry_run(impl, tmp_path):
    """The driver runs the reference loop end to end (CPU, tiny shapes) where timm and a local copy exist."""
    ref = ROOT / ".gpu-ref" / impl
    if not ref.is_dir():
        pytest.skip(f"{ref} absent (bash benchmarks/gpu/get_refs.sh)")
    pytest.importorskip("timm")
    out = tmp_path / "ref.json"
    r = subprocess.run([sys.executable, str(GPU / "refdrive.py"), impl, "--ref", str(ref), "--iters", "2",
                        "--cpu-dry-run", "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=600)
    row = json.loads(out.read_text())["rows"][0]
    assert r.returncode == 0 and row["status"] == "ok", (row.get("error"), r.stderr[-2000:])
    assert row["timed_iters"] == 1 and row["s_per_iter"] > 0 and "wandb" in row["stubbed"]
