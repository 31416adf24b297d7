"""Bad input through the CLI (issue 4): mismatched audio/visual counts, a bank from another dataset, an IPC
larger than a class holds -> one clear error line, exit code != 0; and a small end-to-end distill + evaluate."""

import json

import pytest
import torch

from av_fixtures import NET, register_tiny, write_av_prepared
from mmdistill.cli import main


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))
    register_tiny()
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _net_args():
    return [f"--set=params.net.{k}={json.dumps(v)}" for k, v in NET.items()]


def test_mismatched_audio_visual_counts(tmp_path, capsys):
    d = write_av_prepared(tmp_path / "bad", audio=(1, 8, 8), frame=(3, 8, 8), mismatch=True)
    code = main(["distill", "--method", "dm", "--dataset", "av-prepared", "--ipc", "1", "--out", str(tmp_path / "r"),
                 "--quiet", f"--set=data.path={d}"])
    err = capsys.readouterr().err
    assert code == 2 and "mismatched counts" in err and "train.safetensors" in err and "Traceback" not in err


def test_ipc_larger_than_a_class_holds(tmp_path, capsys):
    code = main(["distill", "--method", "avdd", "--dataset", "tiny-av", "--ipc", "50", "--out", str(tmp_path / "r"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--ipc 50 is larger than class 0 of 'tiny-av' holds (24 pairs)" in err


def test_bank_from_another_dataset(tmp_path, capsys):
    bank = tmp_path / "bank"
    common = ["--method", "davdd", "--ipc", "1", "--quiet", "--set=params.iterations=1", "--set=params.batch_real=4",
              "--set=params.init=real", f"--set=params.bank.path={bank}", "--set=params.bank.num_seeds=1",
              "--set=params.bank.snapshot_epochs=[1]", "--set=params.decoupler.hidden=8", "--set=params.decoupler.dim=4",
              "--set=params.decoupler.epochs=1", *_net_args()]
    assert main(["distill", "--dataset", "tiny-av", "--out", str(tmp_path / "a"), *common]) == 0
    assert (bank / "manifest.json").is_file()
    code = main(["distill", "--dataset", "tiny-av", "--out", str(tmp_path / "b"), "--set=data.noise=2.0", *common])
    err = capsys.readouterr().err
    assert code == 2 and "encoder bank was trained on dataset 'tiny-av' (params" in err and "field 'data_params' differs" in err


def test_distill_factorised_set_and_evaluate(tmp_path):
    run = tmp_path / "run"
    assert main(["distill", "--method", "dm", "--dataset", "tiny-av", "--ipc", "1", "--out", str(run), "--quiet",
                 "--set=params.iterations=2", "--set=params.batch_real=4", "--set=params.init=real",
                 "--set=params.factor=2", *_net_args()]) == 0
    man = json.loads((run / "manifest.json").read_text())
    assert man["meta"]["layout"] == {"factor": 2, "audio": "grid2d", "visual": "grid2d"}
    assert man["budget"]["stored_rows"] == 4
    assert main(["evaluate", str(run), "--seeds", "1", "--no-baseline", "--set", "epochs=1", "--set", "min_steps=5",
                 "--set", "width=8", "--set", "depth=2"]) == 0
    res = json.loads((run / "results.json").read_text())
    assert res["n_train_pairs"] == 16 and set(res["metrics"]) == {"fused_acc", "audio_acc", "visual_acc"}
