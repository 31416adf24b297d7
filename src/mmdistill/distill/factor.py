"""Moved to :mod:`mmdistill.factor` (factorised storage is a property of a synthetic set, next to
:mod:`mmdistill.synth`); this name is kept for imports that still use it."""

from ..factor import decode, decode_set, encode, multiplicity  # noqa: F401
