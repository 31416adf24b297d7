"""Typed errors. Every error names the file and the field, and what was expected.

All inherit from :class:`MMDistillError` so the CLI can turn them into a one-line
message and a non-zero exit code instead of a traceback.
"""

from __future__ import annotations


class MMDistillError(Exception):
    """Base class of all errors mmdistill raises on bad input."""

    exit_code = 2


class ConfigError(MMDistillError, ValueError):
    """A config file or override is invalid (unknown key, wrong type, bad value)."""


class DataError(MMDistillError, ValueError):
    """A data file is missing, corrupt or inconsistent."""


class DataMissingError(DataError, FileNotFoundError):
    """A required data file does not exist; the message says how to obtain it."""


class IntegrityError(MMDistillError, ValueError):
    """A stored artefact failed verification (sha256 mismatch, NaN, wrong shape)."""


class DivergenceError(MMDistillError, RuntimeError):
    """A run produced NaN/inf; the last good checkpoint is kept."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says what was kept (a checkpoint to resume from, or nothing)."""
