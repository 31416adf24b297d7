"""Every shipped config under configs/ loads into its dataclasses and names registered things: the run config
(RunConfig or KDRunConfig), a registered method (or KD loss/preset) and dataset, method params that the method's
config dataclass accepts, and an evaluation protocol that resolves. A config with a mistyped key is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmdistill.config import from_dict, load_config
from mmdistill.data import dataset_names, get_dataset_spec
from mmdistill.distill import get_method, method_names
from mmdistill.errors import ConfigError
from mmdistill.evaluate.protocol import default_protocol
from mmdistill.kd.config import KDRunConfig
from mmdistill.kd.registry import kd_method_names, resolve_method
from mmdistill.runs import resolve_run_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RUN = sorted(p for fam in ("av", "coreset", "vl") for p in (CONFIGS / fam).glob("*.yaml"))
KD = sorted((CONFIGS / "kd").glob("*.yaml"))


def _task(dataset: str) -> str:
    return get_dataset_spec(dataset).info().get("task", "classification")


def test_every_family_ships_configs():
    assert len(RUN) >= 30 and len(KD) >= 5
    assert {p.parent.name for p in RUN} == {"av", "coreset", "vl"}


@pytest.mark.parametrize("path", RUN, ids=[f"{p.parent.name}/{p.name}" for p in RUN])
def test_run_config_resolves(path):
    cfg = resolve_run_config(path)
    assert cfg.method in method_names(), cfg.method
    assert cfg.dataset in dataset_names(), cfg.dataset
    assert (cfg.ipc is None) != (cfg.pairs is None), "exactly one budget (ipc or pairs)"
    method_cfg = from_dict(get_method(cfg.method).Config, cfg.params, where=str(path))
    assert type(method_cfg) is get_method(cfg.method).Config
    proto = default_protocol(_task(cfg.dataset), **cfg.eval)
    assert proto.seeds


@pytest.mark.parametrize("path", KD, ids=[p.name for p in KD])
def test_kd_config_resolves(path):
    cfg = load_config(KDRunConfig, path)
    base, preset = resolve_method(cfg.method)
    assert base in kd_method_names()
    assert cfg.dataset in dataset_names() or cfg.dataset.startswith("paper"), cfg.dataset
    assert cfg.teacher_modality != cfg.student_modality


def test_a_mistyped_key_is_refused(tmp_path):
    good = next(p for p in RUN if p.parent.name == "av" and p.stem.startswith("dm_"))
    bad = tmp_path / "dm_av-digits.yaml"
    bad.write_text(good.read_text(encoding="utf-8").replace("params:", "params:\n  iteratoins: 3", 1))
    cfg = resolve_run_config(bad)
    with pytest.raises(ConfigError, match="iteratoins"):
        from_dict(get_method(cfg.method).Config, cfg.params, where=str(bad))
