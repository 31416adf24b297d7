"""Moved to :mod:`mmdistill.dsa` (the augmentation ops are shared by distillation and evaluation); this name is
kept for imports that still use it."""

from ..dsa import *  # noqa: F401,F403
from ..dsa import AugParams, DSAConfig, SiameseDSA, apply, augment_per_sample, draw, draw_params  # noqa: F401
