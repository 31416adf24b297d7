"""The GPU section of BENCHMARKS.md: pending without a GPU run, verdicts computed from the rows with one."""

from __future__ import annotations

import copy
import json

import pytest

from mmdistill.bench import gpu_section as gs

GiB = 2**30


def _row(name, s, gb, impl="mmdistill", status="ok"):
    return {"name": name, "family": "image-text", "impl": impl, "shapes": {"pairs": 500}, "status": status,
            "s_per_iter": s, "peak_bytes": int(gb * GiB)}


def gpu_doc():
    rows = [_row("lors", 3.0, 15.0), _row("repblend", 0.5, 8.0), {**_row("tesla-vl-5steps", 4.0, 20.0), "shapes": {"syn_steps": 5}},
            {**_row("tesla-vl-20steps", 15.0, 23.5), "shapes": {"syn_steps": 20}, "theta_numel": 47_000_000}, _row("mtt-vl", 9.0, 60.0), _row("avdd-ipc1", 0.02, 3.0),
            _row("lors-reference", 5.0, 18.0, impl="reference"), _row("repblend-reference", 0.6, 7.0, impl="reference")]
    return {"schema": gs.SCHEMA, "version": 1, "device": {"type": "cuda", "name": "NVIDIA H200"}, "torch": "2.11",
            "cuda": "13.0", "tiny": False, "precision": "fp32", "rows": rows,
            "expert_trajectory": {"full_min": 30.5, "heads_features_once_min": 2.0, "heads_encoder_every_step_min": 12.0,
                                  "epochs": 10, "captions": 145000, "batch": 128, "steps_per_trajectory": 11330},
            "tests": {"tests": 40, "failures": 0, "errors": 0, "skipped": 0}}


def test_pending_without_a_file(tmp_path):
    text = "\n".join(gs.section(tmp_path))
    assert "Status: **pending (no GPU run yet)** (no `benchmarks/gpu.json`)" in text
    assert all(v == gs.PENDING for _, v in gs.targets(None))
    for pub in ("1.71", "11.5", "10.17", "21.78", "| 40 |", "| 70 |", "| 71 |", "| 22 |", "158.1", "8.96"):
        assert pub in text, pub  # the published figures are shown even before any run


def test_cpu_smoke_run_is_pending(tmp_path):
    doc = gpu_doc()
    doc["device"] = {"type": "cpu", "name": "x86_64"}
    doc["tiny"] = True
    (tmp_path / "gpu.json").write_text(json.dumps(doc))
    text = "\n".join(gs.section(tmp_path))
    assert "CPU smoke run" in text and "0.500" not in text  # tiny CPU numbers are never shown as measurements
    assert all(v == gs.PENDING for _, v in gs.targets(doc))


def test_verdicts_from_a_gpu_run(tmp_path):
    (tmp_path / "gpu.json").write_text(json.dumps(gpu_doc()))
    v = dict(gs.targets(gs.load(tmp_path)))
    assert v["RepBlend ≤ 0.2 × LoRS s/iter (ours, Flickr30k shapes)"].startswith("met (0.5 / 3 = 0.17)")
    # 3.5 GB growth <= 15 x 188 MB parameter vectors + 2 GB: flat
    assert v["TESLA-VL peak memory flat from 5 to 20 steps (growth ≤ stored θ vectors + 10 %)"].startswith("met (20.00 → 23.50")
    assert v["ours ≤ 0.7 × reference s/iter, LoRS"].startswith("met (3 / 5 = 0.60)")
    assert v["ours ≤ 0.7 × reference s/iter, RepBlend"].startswith("NOT met")  # 0.5 / 0.6 = 0.83
    assert v["ours peak memory ≤ reference, RepBlend"].startswith("NOT met")  # 8 GB vs 7 GB
    assert v["every method runs at paper shapes on CUDA"].startswith("met")
    assert v["CPU and CUDA agree (CUDA test subset)"].startswith("met (40")
    text = "\n".join(gs.section(tmp_path))
    assert "| LoRS distillation, s/iter | 11.5 | 5.00 | 3.00 |" in text
    assert "| TESLA-VL peak memory, GB (20 steps) | 22 | – | 23.50 |" in text
    assert "| AVDD VGGS-10K IPC 1, distillation s (s/iter × 5000) | 158.1 | – | 100.00 |" in text
    assert "NVIDIA H200" in text and "pending" not in text


def test_failures_are_reported():
    doc = gpu_doc()
    doc["rows"][4] = {**doc["rows"][4], "status": "oom", "error": "CUDA out of memory", "s_per_iter": None}
    doc["rows"] = [r for r in doc["rows"] if r["name"] != "lors-reference"]
    doc["tests"] = {"tests": 40, "failures": 2, "errors": 0}
    doc["rows"][3] = {**doc["rows"][3], "theta_numel": 0, "peak_bytes": 30 * GiB}  # activations grew with the steps
    v = dict(gs.targets(doc))
    assert v["TESLA-VL peak memory flat from 5 to 20 steps (growth ≤ stored θ vectors + 10 %)"].startswith("NOT met")
    assert v["every method runs at paper shapes on CUDA"] == "NOT met: mtt-vl: oom"
    assert v["ours ≤ 0.7 × reference s/iter, LoRS"] == "not measured (lors-reference)"
    assert v["CPU and CUDA agree (CUDA test subset)"].startswith("NOT met (2 failures")
    text = "\n".join(gs.render(doc))
    assert "| MTT-VL (unrolled) peak memory, GB | 71 | – | oom |" in text


def test_wrong_schema_is_refused(tmp_path):
    (tmp_path / "gpu.json").write_text(json.dumps([{"cell": 1}]))
    with pytest.raises(ValueError, match="gpu.json"):
        gs.load(tmp_path)
