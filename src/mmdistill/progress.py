"""Progress lines on stderr for long steps (evaluation seeds and epochs, expert and bank training).

Progress bars (tqdm) only draw on a terminal; these plain lines also reach a log file or a CI console, so a
step that takes minutes never runs silent. ``MMDISTILL_PROGRESS=0`` turns them off.
"""

from __future__ import annotations

import os
import sys
import time


def enabled() -> bool:
    return os.environ.get("MMDISTILL_PROGRESS", "1") not in ("0", "false", "no")


def say(msg: str) -> None:
    """One progress line on stderr (when enabled)."""
    if enabled():
        print(f"mmdistill: {msg}", file=sys.stderr, flush=True)


class EpochTicker:
    """Prints ``<desc>: epoch e/E`` at most every ``every_s`` seconds while a step loop runs."""

    def __init__(self, desc: str, total_steps: int, steps_per_epoch: int, every_s: float = 20.0) -> None:
        self.desc, self.total, self.per = desc, max(1, total_steps), max(1, steps_per_epoch)
        self.epochs = -(-self.total // self.per)
        self.every_s = every_s
        self.t0 = self.last = time.perf_counter()

    def step(self, i: int) -> None:
        """Call after step ``i`` (0-based)."""
        now = time.perf_counter()
        if now - self.last >= self.every_s and i + 1 < self.total:
            self.last = now
            say(f"{self.desc}: epoch {(i // self.per) + 1}/{self.epochs} (step {i + 1}/{self.total}, "
                f"{now - self.t0:.0f} s)")
