"""Run directories that cannot lie: resume guard, --overwrite, no leftovers after a failure, results tied to
their set (set_sha256), honest Ctrl-C messages. A tiny DM on a fake av-digits root keeps each run to seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from data_fixtures import make_av_root
from mmdistill.cli import main
from mmdistill.synth import SyntheticSet

ITERS = 4
TINY = [
    "--method", "dm", "--dataset", "av-digits", "--quiet",
    "--set=data.n_mels=16", "--set=data.frames=16", f"--set=params.iterations={ITERS}",
    "--set=params.batch_real=4", "--set=params.init=real", "--set=params.net.width=8",
    "--set=params.net.audio_depth=2", "--set=params.net.visual_depth=2", "--set=params.net.audio_final_pool=[2,2]",
    "--set=params.net.visual_final_pool=[2,2]", "--set=run.checkpoint_every=2",
]
FAST_EVAL = ["--seeds", "1", "--set", "epochs=1", "--set", "min_steps=5"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return make_av_root(tmp_path_factory.mktemp("guard"), takes=7)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))


def distill(root: Path, out: Path, *extra: str, ipc: int = 1) -> int:
    return main(["distill", *TINY, "--ipc", str(ipc), "--data-root", str(root), "--out", str(out), *extra])


def half_run(root: Path, out: Path) -> None:
    """A run killed after its first checkpoint (2 of 4 iterations), as `kill -9` would leave it."""
    from mmdistill.runs import distill as api_distill, resolve_run_config
    from mmdistill.shipped import shipped_config

    cfg = resolve_run_config(shipped_config("dm", "av-digits").path, [a.split("=", 1)[1] for a in TINY if a.startswith("--set=")],
                             method="dm", dataset="av-digits", ipc=1)
    api_distill(cfg, out, data_root=str(root), progress=False, stop_after=2)
    assert (out / "checkpoint" / "state.pt").is_file() and not (out / "synthetic.safetensors").exists()


def test_resume_refuses_a_different_set_and_names_each_field(tmp_path, root, capsys):
    run = tmp_path / "run"
    half_run(root, run)
    before = (run / "config.yaml").read_text()
    capsys.readouterr()
    assert distill(root, run, "--resume", "--set=params.batch_real=8", ipc=2) == 2
    err = capsys.readouterr().err
    assert "ipc: 1 in the run" in err and "2 requested" in err and "params.batch_real" in err, err
    assert (run / "config.yaml").read_text() == before and not (run / "synthetic.safetensors").exists()
    assert distill(root, run, "--resume", "--set=data.n_mels=20") == 2
    assert "data.n_mels" in capsys.readouterr().err


def test_resume_records_lr_and_iteration_changes_at_their_iteration(tmp_path, root):
    run = tmp_path / "run"
    half_run(root, run)
    assert distill(root, run, "--resume", "--set=params.lr_audio=0.05", f"--set=params.iterations={ITERS + 2}") == 0
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["params"]["lr_audio"] == 0.05 and cfg["params"]["iterations"] == ITERS + 2
    (change,) = cfg["changes"]
    assert change["it"] == 2 and change["params.lr_audio"] == {"old": 0.2, "new": 0.05}
    assert change["params.iterations"] == {"old": ITERS, "new": ITERS + 2}
    log = [json.loads(l) for l in (run / "log.jsonl").read_text().splitlines()]
    assert [r for r in log if r.get("event") == "change"][0]["it"] == 2
    assert len(SyntheticSet.load(run)) == 10  # still the 1-per-class set, not rows duplicated


def test_resume_without_method_reads_the_runs_own_config(tmp_path, root):
    run = tmp_path / "run"
    half_run(root, run)
    assert main(["distill", "--resume", "--out", str(run), "--data-root", str(root), "--quiet"]) == 0
    syn = SyntheticSet.load(run)
    assert syn.meta["method"] == "dm" and len(syn) == 10
    assert main(["distill", "--resume", "--out", str(tmp_path / "none"), "--quiet"]) == 2


def test_non_empty_run_dir_needs_overwrite_which_removes_stale_results(tmp_path, root, capsys):
    run = tmp_path / "run"
    assert distill(root, run) == 0
    assert main(["evaluate", str(run), *FAST_EVAL, "--data-root", str(root)]) == 0
    (run / "report.html").write_text("old")
    (run / "plots").mkdir()
    (run / "results.convnet.json").write_text("{}")
    capsys.readouterr()
    assert distill(root, run, ipc=2) == 2
    assert "not empty" in capsys.readouterr().err and len(SyntheticSet.load(run)) == 10
    assert distill(root, run, "--overwrite", ipc=2) == 0
    assert len(SyntheticSet.load(run)) == 20
    left = {p.name for p in run.iterdir()}
    assert not left & {"results.json", "results.convnet.json", "eval", "report.html", "plots"}, left


def test_failed_distill_leaves_no_run_dir(tmp_path, root, capsys):
    run = tmp_path / "run"
    assert distill(root, run, ipc=500) == 2
    assert "larger than class" in capsys.readouterr().err
    assert not run.exists()


def test_report_on_a_non_run_dir_writes_nothing(tmp_path, capsys):
    d = tmp_path / "notarun"
    d.mkdir()
    (d / "notes.txt").write_text("x")
    assert main(["report", str(d)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]


def test_results_must_match_the_set_beside_them(tmp_path, root, capsys):
    run = tmp_path / "run"
    assert distill(root, run) == 0
    assert main(["evaluate", str(run), *FAST_EVAL, "--data-root", str(root)]) == 0
    res = json.loads((run / "results.json").read_text())
    from mmdistill.io import sha256_file

    assert res["set_sha256"] == sha256_file(run / "synthetic.safetensors")
    assert main(["report", str(run), "--no-data", "--no-plots"]) == 0
    # another set with the same budget lands beside the old results (e.g. copied in by hand)
    syn = SyntheticSet.load(run)
    syn.tensors["audio"] = syn.tensors["audio"] + 1.0
    syn.save(run)
    (run / "report.html").unlink()
    capsys.readouterr()
    assert main(["report", str(run), "--no-data", "--no-plots"]) == 2
    assert "belongs to another set" in capsys.readouterr().err and not (run / "report.html").exists()
    assert main(["compare", str(run), "--out", str(tmp_path / "c.html")]) == 2
    assert "belongs to another set" in capsys.readouterr().err


def _interrupt_at(monkeypatch, it: int) -> None:
    from mmdistill.distill.dm import DMAV as DM

    orig = DM.step

    def step(self, i):  # noqa: ANN001
        if i == it:
            raise KeyboardInterrupt
        return orig(self, i)

    monkeypatch.setattr(DM, "step", step)


def test_ctrl_c_says_what_was_saved(tmp_path, root, monkeypatch, capsys):
    run = tmp_path / "early"
    _interrupt_at(monkeypatch, 1)  # before the first checkpoint (every 2 iterations)
    assert distill(root, run) == 130
    err = capsys.readouterr().err
    assert "nothing was saved" in err and "checkpoint is kept" not in err
    assert not run.exists()
    run = tmp_path / "late"
    monkeypatch.undo()
    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))
    _interrupt_at(monkeypatch, 3)
    assert distill(root, run) == 130
    err = capsys.readouterr().err
    assert "checkpoint" in err and "is kept" in err and "--resume" in err
    assert (run / "checkpoint" / "state.pt").is_file()


def test_periodic_evaluation_runs_on_val_and_refuses_without_one(tmp_path, capsys):
    """The run loop's periodic evaluation draws validation curves on the val split, never on test by default."""
    root = make_av_root(tmp_path / "data12", takes=10)  # takes 0-4 test, 5-6 val (val_fraction 0.05), 7-9 train
    capsys.readouterr()
    assert distill(root, tmp_path / "a", "--set=run.eval_every=2") == 2
    assert "val_fraction" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert distill(root, tmp_path / "b", "--set=run.eval_every=2", "--set=data.val_fraction=0.05",
                   "--set=eval.epochs=1", "--set=eval.min_steps=2") == 0
    evals = [r["eval"] for r in map(json.loads, (tmp_path / "b" / "log.jsonl").read_text().splitlines()) if "eval" in r]
    assert evals and all(k.startswith("val_") for e in evals for k in e), evals
