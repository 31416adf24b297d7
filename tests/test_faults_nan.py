"""NaN/inf during a run (issue 8): the run stops with a clear message (CLI exit code 2, no traceback), no
synthetic set is written, and the last checkpoint is usable - finite, loadable, and ``--resume`` from it (with a
sane learning rate) finishes exactly as an uninterrupted run would."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from data_fixtures import make_av_root
from mmdistill.distill.base import Budget, run
from mmdistill.errors import DivergenceError
from mmdistill.synth import SyntheticSet
from test_faults import DISTILL_ARGS
from test_runloop import Toy, _ds

pytestmark = pytest.mark.slow  # fault loops: runs interrupted by NaN and resumed


@dataclass
class OverflowConfig:
    iterations: int = 10
    lr: float = 0.1
    blowup_at: int = -1
    overflow_at: int = -1  # the update overflows to inf while the logged loss stays finite


class Overflow(Toy):
    name = "toy-overflow"
    Config = OverflowConfig

    def step(self, it):
        out = super().step(it)
        if it == self.cfg.overflow_at:
            self.x = self.x * float("inf")
        return out


def _all_finite(obj) -> bool:  # noqa: ANN001
    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_all_finite(v) for v in obj)
    return True


def test_overflowing_update_is_not_checkpointed_and_resume_is_exact(tmp_path):
    ref = run(Overflow(OverflowConfig(), _ds(), Budget(2, "ipc"), seed=1), tmp_path / "ref", checkpoint_every=1, progress=False)
    d = tmp_path / "run"
    with pytest.raises(DivergenceError, match=r"iteration 6: state x became NaN/inf; stopped\. The last good checkpoint is"):
        run(Overflow(OverflowConfig(overflow_at=6), _ds(), Budget(2, "ipc"), seed=1), d, checkpoint_every=1, progress=False)
    state = torch.load(d / "checkpoint" / "state.pt", weights_only=False)
    assert state["next_it"] == 6 and _all_finite(state["distiller"])
    assert not (d / "synthetic.safetensors").exists()
    out = run(Overflow(OverflowConfig(), _ds(), Budget(2, "ipc"), seed=1), d, checkpoint_every=1, progress=False, resume=True)
    assert torch.equal(out.tensors["a"], ref.tensors["a"])
    assert torch.equal(SyntheticSet.load(d).tensors["a"], ref.tensors["a"])


def test_divergence_before_any_checkpoint_says_so(tmp_path):
    with pytest.raises(DivergenceError, match="No checkpoint was written yet"):
        run(Overflow(OverflowConfig(blowup_at=1), _ds(), Budget(2, "ipc"), seed=0), tmp_path, checkpoint_every=5, progress=False)


def test_cli_nan_exits_2_with_a_clear_message_and_a_resumable_checkpoint(tmp_path, monkeypatch, capsys):
    """3 good iterations (checkpoint), then a resume with an absurd learning rate diverges: exit 2, one clear line,
    no set written, the checkpoint untouched; resuming with the normal learning rate ends bitwise equal to a run
    that never diverged (the optimiser takes the lr from the config, not from the checkpoint)."""
    from mmdistill.cli import main

    monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))
    root = make_av_root(tmp_path, takes=7)
    args = [*DISTILL_ARGS, "--set=run.checkpoint_every=3", "--data-root", str(root)]
    six = "--set=params.iterations=6"
    ref, d = tmp_path / "ref", tmp_path / "run"
    assert main(["distill", *args, six, "--out", str(ref)]) == 0
    assert main(["distill", *args, "--set=params.iterations=3", "--out", str(d)]) == 0
    (d / "synthetic.safetensors").unlink()
    (d / "manifest.json").unlink()
    capsys.readouterr()
    code = main(["distill", *args, six, "--set=params.lr_audio=1e38", "--set=params.lr_visual=1e38", "--out", str(d), "--resume"])
    err = capsys.readouterr().err
    shipped = "mmdistill: using the shipped config configs/av/dm_av-digits.yaml"  # named on stderr (no --config)
    assert err.startswith(shipped)
    err = err.split("\n", 1)[1]
    assert code == 2
    assert err.startswith("mmdistill: error: iteration ") and "became NaN/inf; stopped" in err, err
    assert str(d / "checkpoint" / "state.pt") in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (d / "synthetic.safetensors").exists() and not (d / "manifest.json").exists()
    state = torch.load(d / "checkpoint" / "state.pt", weights_only=False)
    assert state["next_it"] == 3 and _all_finite(state["distiller"])
    # the checkpoint is usable: resume with the normal learning rate finishes exactly as the run that never diverged
    assert main(["distill", *args, six, "--out", str(d), "--resume"]) == 0
    got, want = SyntheticSet.load(d), SyntheticSet.load(ref)
    assert set(got.tensors) == set(want.tensors) and all(torch.equal(got.tensors[k], want.tensors[k]) for k in want.tensors)


def test_resume_removes_temp_files_of_killed_writes(tmp_path):
    from test_runloop import ToyConfig

    d = tmp_path / "run"
    run(Toy(ToyConfig(), _ds(), Budget(2, "ipc"), seed=0), d, checkpoint_every=2, progress=False, stop_after=4)
    stale = [d / "checkpoint" / ".state.pt.abc123.tmp", d / ".log.jsonl.x1.tmp", d / ".synthetic.safetensors.q.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    keep = d / ".other.json.z.tmp"  # not the run loop's: left alone
    keep.write_bytes(b"")
    run(Toy(ToyConfig(), _ds(), Budget(2, "ipc"), seed=0), d, checkpoint_every=2, progress=False, resume=True)
    assert not any(p.exists() for p in stale) and keep.exists()
    assert SyntheticSet.load(d).tensors["a"].shape == (4, 3)
