"""Numeric precision of the distillation inner loops and of evaluation: ``fp32`` or ``bf16``.

``precision: bf16`` runs the network forward passes (and so their backward passes) under
``torch.autocast(dtype=torch.bfloat16)``: convolutions and matrix products in bfloat16, reductions, norms and
losses in float32 (PyTorch's autocast op lists). The learned tensors, the optimiser state, expert parameters and
every matching loss stay float32; callers widen the autocast outputs back with :func:`widen` (a float64 run, as in
the parity tests, stays float64).

Where it applies:

* on CUDA, ``bf16`` autocasts (bfloat16 tensor cores; Micikevicius et al. 2018, arXiv 1710.03740, for mixed
  precision training in general);
* on the CPU, ``bf16`` is float32 unless the environment variable ``MMDISTILL_BF16_ON_CPU=1`` is set (CPU
  autocast is usually slower than float32; the switch exists so the numerics of a bf16 run can be checked on a
  machine without a GPU, as the tests do);
* ``fp32`` never autocasts.

The tolerance within which a bf16 step agrees with the fp32 step (per family, stated in
``tests/test_precision.py``) is what makes bf16 a valid setting; a method not listed there runs in float32.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch

from .errors import ConfigError

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
CPU_SWITCH = "MMDISTILL_BF16_ON_CPU"


def check_precision(precision: str, where: str = "precision") -> str:
    """Return ``precision`` if it is known, else raise a ConfigError naming the field."""
    if precision not in PRECISIONS:
        raise ConfigError(f"{where}: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def autocast_active(precision: str, device: torch.device | str) -> bool:
    """Whether :func:`autocast` casts on this device (see the module docstring)."""
    check_precision(precision)
    if precision == "fp32":
        return False
    kind = torch.device(device).type
    if kind == "cuda":
        return True
    return kind == "cpu" and os.environ.get(CPU_SWITCH, "") == "1"


def autocast(precision: str, device: torch.device | str) -> AbstractContextManager:
    """A context in which forward passes run at ``precision`` on ``device`` (a no-op for fp32)."""
    if not autocast_active(precision, device):
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def widen(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 if autocast left it in a 16-bit float type, else unchanged (float32/float64 pass through)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t
