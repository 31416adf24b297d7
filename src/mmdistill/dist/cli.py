"""CLI for scale-out subcommands (issue 8)."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:  # noqa: SLF001 - argparse has no public type
    """Register the scale-out subcommands (filled in by the dist module)."""
