"""Audio–visual retrieval evaluation: the grouped recall metric on hand-made matrices, learning beyond chance on a
tiny instance-paired set (and not on the same set re-paired within class), and `evaluate --task retrieval` end to end."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from mmdistill.cli import main
from mmdistill.evaluate import av_retrieval
from mmdistill.evaluate.metrics import group_chance, group_recalls, retrieval_recalls

ROOT = "../shared/data"
TINY_DATA = {"num_classes": 2, "concepts_per_class": 10, "n_train_voices": 3, "n_test_voices": 2}
FAST = av_retrieval.AVRetrievalProtocol(width=8, depth=2, embed_dim=16, epochs=1, min_steps=150, batch_size=32,
                                        augment=False, seeds=[0])


def test_group_recalls_hand_made():
    # 4 queries x 5 gallery items; query groups [0, 0, 1, 2], gallery groups [0, 1, 1, 2, 3]
    sim = torch.tensor([[0.9, 0.1, 0.2, 0.3, 0.0],   # q0 (group 0): positive g0 ranks 1st
                        [0.1, 0.9, 0.8, 0.7, 0.6],   # q1 (group 0): positive g0 ranks 5th
                        [0.5, 0.1, 0.4, 0.3, 0.6],   # q2 (group 1): best positive g2 (0.4) ranks 3rd
                        [0.0, 0.0, 0.0, 0.5, 0.5]])  # q3 (group 2): g3 ties with g4 -> rank 1 (ties favour the query)
    qg, gg = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 2, 3])
    r = group_recalls(sim, qg, gg, ks=(1, 3, 5))
    assert r == {1: 50.0, 3: 75.0, 5: 100.0}
    assert group_chance(qg, gg) == pytest.approx(100.0 * (1 / 5 + 1 / 5 + 2 / 5 + 1 / 5) / 4)
    with pytest.raises(ValueError):
        group_recalls(sim, torch.tensor([0, 0, 1, 9]), gg)


def test_group_recalls_agree_with_caption_recalls():
    g = torch.Generator().manual_seed(0)
    sim = torch.randn(6, 11, generator=g)
    t2i = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 5, 5, 1])
    ref = retrieval_recalls(sim, t2i)
    ir = group_recalls(sim.T, t2i, torch.arange(6))
    tr = group_recalls(sim, torch.arange(6), t2i)
    for k in (1, 5, 10):
        assert ir[k] == pytest.approx(ref[f"ir@{k}"]) and tr[k] == pytest.approx(ref[f"tr@{k}"])


def _concept_set(per_concept: int, seed: int, concepts: int = 16, classes: int = 2):
    """Instance-paired toy data: each concept has its own audio and visual template (shared by its pairs)."""
    g = torch.Generator().manual_seed(100)
    ta = F.avg_pool2d(torch.randn(concepts, 1, 8, 8, generator=g), 3, 1, 1) * 3
    tv = F.avg_pool2d(torch.randn(concepts, 3, 8, 8, generator=g), 3, 1, 1) * 3
    n = torch.Generator().manual_seed(seed)
    c = torch.arange(concepts).repeat_interleave(per_concept)
    a = ta[c] + 0.7 * torch.randn(c.numel(), 1, 8, 8, generator=n)
    v = tv[c] + 0.7 * torch.randn(c.numel(), 3, 8, 8, generator=n)
    return {"audio": a, "visual": v}, c, c % classes


def test_retrieval_beats_chance_only_with_instance_pairs():
    train, c_tr, y_tr = _concept_set(6, seed=1)
    test, c_te, _ = _concept_set(2, seed=2)
    res = av_retrieval.train_and_test(FAST, train, test, c_te, seed=0)
    assert res["chance@1"] == pytest.approx(100 * 2 / 32)
    assert res["a2i@1"] > 4 * res["chance@1"] and res["i2a@1"] > 4 * res["chance@1"]
    # the same pairs re-paired at random within class: audio and image share only the class
    g = torch.Generator().manual_seed(3)
    perm = torch.arange(len(y_tr))
    for k in range(2):
        idx = torch.nonzero(y_tr == k).flatten()
        perm[idx] = idx[torch.randperm(idx.numel(), generator=g)]
    shuffled = {"audio": train["audio"], "visual": train["visual"][perm]}
    low = av_retrieval.train_and_test(FAST, shuffled, test, c_te, seed=0)
    assert low["a2i@1"] < res["a2i@1"] / 2


def test_evaluate_task_retrieval_cli(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    data = [f"--set=data.{k}={v}" for k, v in TINY_DATA.items()]
    assert main(["distill", "--method", "random", "--dataset", "spoken-emoji", "--ipc", "2", "--out", str(run),
                 "--quiet", "--data-root", ROOT, *data]) == 0
    fast = ["--set", "epochs=1", "--set", "min_steps=20", "--set", "width=8", "--set", "depth=2", "--set", "embed_dim=16"]
    assert main(["evaluate", str(run), "--task", "retrieval", "--seeds", "1", "--data-root", ROOT, *fast]) == 0
    res = json.loads((run / "results.retrieval.json").read_text())
    assert {"a2i@1", "a2i@5", "a2i@10", "i2a@1", "i2a@5", "i2a@10", "r_mean", "chance@1"} <= set(res["metrics"])
    assert res["protocol"]["task"] == "av-retrieval" and res["protocol"]["selection"] == "last"
    assert res["positives"].startswith("concept") and res["n_train_pairs"] == 4
    assert "random_subset_same_size" in res and res["set_sha256"]
    assert res["metrics"]["chance@1"]["mean"] == pytest.approx(100 * 2 / 40)
    assert not (run / "results.json").exists()  # classification stays the default and is not touched
    out = capsys.readouterr().out
    assert "a2i@1" in out
    # the full training set, written where asked
    ref = tmp_path / "full"
    assert main(["evaluate", "--real", "--like", str(run), "--task", "retrieval", str(ref), "--seeds", "1",
                 "--data-root", ROOT, *fast]) == 0
    full = json.loads((ref / "results.retrieval.json").read_text())
    assert full["method"] == "full" and full["n_train_pairs"] == 60 and full["positives"].startswith("concept")


def test_label_paired_data_falls_back_to_class_positives():
    from mmdistill.data.paired import PairedDataset

    x = {"audio": torch.zeros(4, 1, 4, 4), "visual": torch.zeros(4, 3, 4, 4)}
    lab = torch.tensor([0, 0, 1, 1])
    label_paired = PairedDataset(name="t", split="test", task="classification", tensors=x, labels=lab, pairing="label",
                                 extra_labels={"concept": torch.arange(4)})
    groups, why = av_retrieval.positives_of(label_paired)
    assert torch.equal(groups, lab) and why.startswith("class")
    inst = PairedDataset(name="t", split="test", task="classification", tensors=x, labels=lab,
                         extra_labels={"concept": torch.tensor([0, 1, 2, 2])})
    groups, why = av_retrieval.positives_of(inst)
    assert groups.tolist() == [0, 1, 2, 2] and why.startswith("concept")
