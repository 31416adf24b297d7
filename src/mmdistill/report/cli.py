"""CLI for ``mmdistill report`` and ``mmdistill compare`` (issue 8)."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse has no public type
    """Register the report subcommands (filled in by the report module)."""
