"""Every shipped config under configs/ resolves into a valid run config and method config."""

from pathlib import Path

import pytest

from mmdistill.config import from_dict
from mmdistill.distill import get_method
from mmdistill.evaluate.protocol import default_protocol
from mmdistill.runs import resolve_run_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "coreset").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_coreset_config_resolves(path):
    cfg = resolve_run_config(path)
    method = get_method(cfg.method)
    from_dict(method.Config, cfg.params, where=str(path))
    task = "retrieval" if cfg.dataset in {"emoji", "coco-mini", "karpathy"} else "classification"
    default_protocol(task, **cfg.eval)
