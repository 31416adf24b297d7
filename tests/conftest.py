"""Test-session settings: one intra-op thread (2-thread OpenMP stalls badly when the box is shared,
and tiny test nets gain nothing from a second thread); subprocesses inherit OMP_NUM_THREADS=1."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
