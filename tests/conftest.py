"""Test-session settings: one intra-op thread (2-thread OpenMP stalls badly when the box is shared,
and tiny test nets gain nothing from a second thread); subprocesses inherit OMP_NUM_THREADS=1."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

import pytest  # noqa: E402

# Devices a `device`-taking test runs on: always the CPU, and CUDA when this machine has it. Each CUDA instance
# carries the `cuda` marker, so `pytest -m cuda` runs exactly the GPU half (benchmarks/gpu/run.sh).
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    return request.param


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        cs = getattr(item, "callspec", None)
        if cs is not None and cs.params.get("device") == "cuda":
            item.add_marker(pytest.mark.cuda)
