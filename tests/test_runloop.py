"""The shared run loop: exact resume after a kill, NaN detection, log truncation."""

import json
from dataclasses import dataclass

import pytest
import torch

from mmdistill.data.paired import PairedDataset
from mmdistill.distill.base import Budget, Distiller, run
from mmdistill.errors import ConfigError, DivergenceError
from mmdistill.synth import SyntheticSet


@dataclass
class ToyConfig:
    iterations: int = 12
    lr: float = 0.1
    blowup_at: int = -1


class Toy(Distiller):
    """Noisy SGD on a tensor: uses the global RNG each step, like real methods."""

    name = "toy"
    Config = ToyConfig

    def init(self):
        self.x = torch.randn(4, 3)
        self.opt_m = torch.zeros_like(self.x)

    def step(self, it):
        g = self.x - torch.randn(4, 3)
        self.opt_m = 0.5 * self.opt_m + g
        self.x = self.x - self.cfg.lr * self.opt_m
        loss = float((g ** 2).mean())
        if it == self.cfg.blowup_at:
            loss = float("nan")
        return {"loss": loss}

    def export(self):
        return SyntheticSet(tensors={"a": self.x.clone(), "b": self.x.clone()}, labels=torch.zeros(4, dtype=torch.long),
                            meta=self.base_meta())

    def state_dict(self):
        return {"x": self.x, "m": self.opt_m}

    def load_state_dict(self, s):
        self.x, self.opt_m = s["x"], s["m"]


def _ds():
    return PairedDataset(name="toy", split="train", task="classification",
                         tensors={"a": torch.zeros(8, 3), "b": torch.zeros(8, 3)}, labels=torch.tensor([0, 1] * 4))


def test_resume_after_kill_is_bitwise_identical(tmp_path):
    ref = run(Toy(ToyConfig(), _ds(), Budget(2, "ipc"), seed=3), tmp_path / "ref", checkpoint_every=4, progress=False)
    d = tmp_path / "killed"
    run(Toy(ToyConfig(), _ds(), Budget(2, "ipc"), seed=3), d, checkpoint_every=4, progress=False, stop_after=6)
    assert not (d / "synthetic.safetensors").exists()
    out = run(Toy(ToyConfig(), _ds(), Budget(2, "ipc"), seed=3), d, checkpoint_every=4, progress=False, resume=True)
    assert torch.equal(out.tensors["a"], ref.tensors["a"])
    assert torch.equal(SyntheticSet.load(d).tensors["a"], ref.tensors["a"])
    its = [json.loads(l).get("it") for l in (d / "log.jsonl").read_text().splitlines() if "loss" in json.loads(l)]
    assert its == list(range(12))  # iterations 4,5 done before the kill were dropped and redone once


def test_different_seed_differs(tmp_path):
    a = run(Toy(ToyConfig(), _ds(), Budget(2, "ipc"), seed=1), tmp_path / "a", progress=False)
    b = run(Toy(ToyConfig(), _ds(), Budget(2, "ipc"), seed=2), tmp_path / "b", progress=False)
    assert not torch.equal(a.tensors["a"], b.tensors["a"])


def test_nan_stops_with_usable_checkpoint(tmp_path):
    with pytest.raises(DivergenceError, match="iteration 5: loss became NaN"):
        run(Toy(ToyConfig(blowup_at=5), _ds(), Budget(2, "ipc"), seed=0), tmp_path, checkpoint_every=2, progress=False)
    state = torch.load(tmp_path / "checkpoint" / "state.pt", weights_only=False)
    assert state["next_it"] == 4 and torch.isfinite(state["distiller"]["x"]).all()
    assert not (tmp_path / "synthetic.safetensors").exists()


def test_budget_checks():
    with pytest.raises(ConfigError, match="larger than class"):
        Toy(ToyConfig(), _ds(), Budget(5, "ipc"), seed=0)
    with pytest.raises(ConfigError, match="exceeds"):
        Toy(ToyConfig(), _ds(), Budget(9, "pairs"), seed=0)
    with pytest.raises(ConfigError):
        Budget(0, "ipc")


def test_periodic_evaluation_is_logged(tmp_path):
    calls = []

    def ev(syn):
        calls.append(len(syn))
        return {"acc": 1.0}

    run(Toy(ToyConfig(), _ds(), Budget(2, "ipc"), seed=0), tmp_path, eval_every=5, evaluate_fn=ev, progress=False)
    recs = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    # a curve from the start (it -1, the initial set) to the saved set (the done event, it 12)
    assert [r["it"] for r in recs if "eval" in r] == [-1, 4, 9, 12] and calls == [4, 4, 4, 4]
    assert [r.get("event") for r in recs if "eval" in r] == ["start", None, None, "done"]
