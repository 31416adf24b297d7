"""Every config under configs/av resolves and runs 2 iterations with tiny overrides (issue 4).

Quick configs run on the real dataset they name (skipped without ../shared/data); paper-scale configs run on
a tiny av-prepared fixture with the paper's tensor shapes (1x128x56 audio, 3x224x224 frames) written to tmp_path.
Only sizes are overridden (width, batch, bank/decoupler/proxy sizes), never the structure of the config.
"""

from pathlib import Path

import pytest
import torch

from av_fixtures import write_av_prepared
from mmdistill.config import from_dict
from mmdistill.data.root import resolve_data_root
from mmdistill.distill import get_method
from mmdistill.evaluate.protocol import default_protocol
from mmdistill.runs import distill, resolve_run_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "av").glob("*.yaml"))
TINY = ["params.iterations=2", "params.batch_real=4", "params.net.width=4", "params.proxy.epochs=1",
        "params.proxy.width=4", "params.proxy.depth=1", "run.eval_every=0"]
SPOKEN_EMOJI_SMALL = {"num_classes": 2, "concepts_per_class": 10, "n_train_voices": 3, "n_test_voices": 2}
TINY_DAVDD = ["params.bank.num_seeds=1", "params.bank.snapshot_epochs=[1]", "params.decoupler.hidden=8",
              "params.decoupler.dim=4", "params.decoupler.epochs=1"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_there_are_quick_and_paper_configs():
    names = {p.name for p in CONFIGS}
    for m in ("dm", "avdd", "dm-avdd-lr", "davdd"):
        assert f"{m}_av-digits.yaml" in names and f"{m}_av-digits-hard.yaml" in names and f"{m}_spoken-emoji.yaml" in names
    for m in ("dm", "avdd", "davdd"):
        assert f"{m}_av-prepared.yaml" in names


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_av_config_runs_two_iterations(path, tmp_path, monkeypatch):
    cfg0 = resolve_run_config(path)
    method = get_method(cfg0.method)
    full = from_dict(method.Config, cfg0.params, where=str(path))  # the shipped values are valid as they are
    default_protocol("classification", **cfg0.eval)
    overrides = list(TINY) + [f"params.bank.path={tmp_path / 'bank'}"] * (cfg0.method == "davdd")
    overrides += TINY_DAVDD if cfg0.method == "davdd" else []
    if cfg0.dataset == "av-prepared":
        assert full.iterations == 5000 and full.net.width == 128 and full.factor == 2 and full.init == "herding"
        monkeypatch.setenv("MMDISTILL_CACHE", str(tmp_path / "cache"))
        d = write_av_prepared(tmp_path / "avp", classes=2, per_class=4)
        overrides.append(f"data.path={d}")
    else:
        if not (resolve_data_root() / "fsdd").is_dir():
            pytest.skip("../shared/data not present")
        assert full.net.width == 32 and full.batch_real <= 64
    if cfg0.dataset == "spoken-emoji":  # a small build of the same loader (the full one takes a minute)
        overrides += [f"data.{k}={v}" for k, v in SPOKEN_EMOJI_SMALL.items()]
    cfg = resolve_run_config(path, overrides, ipc=1)
    run_dir, syn = distill(cfg, tmp_path / "run", progress=False)
    assert len(syn) == syn.meta["stored_ipc"] * len(syn.meta["class_names"] or [0, 1])
    log = (run_dir / "log.jsonl").read_text().splitlines()
    assert sum('"loss"' in l for l in log) == 2
    if cfg0.dataset == "av-prepared":
        assert tuple(syn.tensors["audio"].shape[1:]) == (1, 128, 56) and tuple(syn.tensors["visual"].shape[1:]) == (3, 224, 224)
        assert syn.meta["layout"]["factor"] == 2
