"""End-to-end CLI: distill -> evaluate on real data, and bad input giving clear errors with exit code != 0."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmdistill.cli import main
from mmdistill.data.root import resolve_data_root

pytestmark = pytest.mark.skipif(not (resolve_data_root() / "fsdd").is_dir(), reason="../shared/data not present")

FAST = ["--set", "epochs=1", "--set", "min_steps=10", "--seeds", "1"]


def test_distill_evaluate_roundtrip(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["distill", "--method", "random", "--dataset", "av-digits", "--ipc", "1", "--out", str(run), "--quiet"]) == 0
    assert (run / "synthetic.safetensors").is_file() and (run / "manifest.json").is_file() and (run / "config.yaml").is_file()
    man = json.loads((run / "manifest.json").read_text())
    assert man["meta"]["budget"] == {"value": 1, "unit": "ipc"} and man["budget"]["stored_rows"] == 10
    assert abs(man["budget"]["pair_equivalents"] - 10.0) < 1e-9
    assert main(["evaluate", str(run), *FAST]) == 0
    res = json.loads((run / "results.json").read_text())
    assert set(res) >= {"dataset", "method", "budget", "protocol", "metrics"}
    assert set(res["metrics"]) == {"fused_acc", "audio_acc", "visual_acc"}
    assert res["protocol"]["selection"] == "last" and res["protocol"]["seeds"] == [0]
    assert res["random_subset_same_size"]["metrics"]["fused_acc"]["per_seed"]
    assert main(["evaluate", str(run), "--arch", "lenet", *FAST]) == 0
    assert json.loads((run / "results.lenet.json").read_text())["protocol"]["nets"]["audio"]["arch"] == "lenet"


def test_unknown_method_and_config_key(tmp_path, capsys):
    assert main(["distill", "--method", "nope", "--dataset", "av-digits", "--ipc", "1", "--out", str(tmp_path / "x")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: herding\ndataset: av-digits\nipc: 1\nparams: {proxy: {epoks: 1}}\n")
    assert main(["distill", "--config", str(cfg), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) epoks" in err and "config.params.proxy" in err
    assert main(["distill", "--method", "random", "--dataset", "av-digits", "--ipc", "500", "--out", str(tmp_path / "z")]) == 2
    assert "larger than class" in capsys.readouterr().err


def test_set_that_does_not_fit_dataset(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["distill", "--method", "random", "--dataset", "av-digits", "--ipc", "1", "--out", str(run), "--quiet"]) == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["data"] == {"n_mels": 32, "frames": 32}  # the shipped config's input size
    cfg["data"] = {"n_mels": 64, "frames": 64}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["evaluate", str(run), *FAST]) == 2
    assert "'tensor/audio' has per-pair shape (1, 32, 32)" in capsys.readouterr().err
    assert not (run / "results.json").exists()


def test_edited_safetensors_exit_code(tmp_path):
    run = tmp_path / "run"
    assert main(["distill", "--method", "random", "--dataset", "av-digits", "--ipc", "1", "--out", str(run), "--quiet"]) == 0
    p = run / "synthetic.safetensors"
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    p.write_bytes(bytes(raw))
    proc = subprocess.run([sys.executable, "-m", "mmdistill.cli", "evaluate", str(run), *FAST], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "synthetic.safetensors: sha256 mismatch" in proc.stderr and "Traceback" not in proc.stderr


def test_emoji_coreset_smoke(tmp_path):
    run = tmp_path / "emo"
    args = ["distill", "--method", "herding", "--dataset", "emoji", "--pairs", "20", "--out", str(run), "--quiet",
            "--set", "params.proxy.epochs=1"]
    assert main(args) == 0
    man = json.loads((run / "manifest.json").read_text())
    assert len(man["meta"]["captions"]) == 20 and len(set(man["meta"]["source_indices"])) == 20
    assert main(["evaluate", str(run), *FAST]) == 0
    res = json.loads((run / "results.json").read_text())
    assert {"r_mean", "ir@1", "tr@10"} <= set(res["metrics"])


def test_config_eval_seeds_and_cli_seeds_combine(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: random\ndataset: av-digits\nipc: 1\neval: {seeds: [0, 1, 2], epochs: 1, min_steps: 5}\n")
    run = tmp_path / "run"
    assert main(["distill", "--config", str(cfg), "--out", str(run), "--quiet"]) == 0
    assert main(["evaluate", str(run), "--seeds", "1", "--no-baseline"]) == 0
    assert json.loads((run / "results.json").read_text())["protocol"]["seeds"] == [0]
