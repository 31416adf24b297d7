"""kill -9 harness for the fault tests (issue 8): run a CLI command in a subprocess, SIGKILL it at a seeded
random point, check that nothing in its output directory is corrupt, rerun (resume) until it finishes.

Kill points (chosen per kill by a seeded ``random.Random``):

* ``startup``  - a uniform delay within the measured start-up time (imports, data loading, cache building);
* ``progress`` - after the run has made ``k`` more units of progress (log lines / finished files, counted by a
  callback), plus a uniform delay of up to one unit's duration: mid-iteration / mid-expert;
* ``write``    - as soon as a temporary file of an atomic write (``.<name>.*.tmp``) appears under the watched
  directory: mid-checkpoint / mid-artefact write.

:func:`scan_dir` is the corruption check run after every kill: every JSON/JSONL/YAML parses (a torn last line of
a JSONL log is reported, not failed: the run loop drops it on resume), every ``*.safetensors`` parses, every
``*.pt`` loads, a ``manifest.json`` + ``synthetic.safetensors`` pair verifies through ``SyntheticSet.load``, and
leftover temporary files are listed (they are dot-files no loader globs).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
MODES = ("startup", "progress", "write")


def cli_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MMDISTILL_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_OFFLINE": "1", "PYTHONHASHSEED": "0"})
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmdistill.cli", *args]


def run_cli(cmd: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))


# ------------------------------------------------------------------------------------------------ checks
def tmp_files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob(".*.tmp") if p.is_file())


def scan_dir(d: Path) -> tuple[list[str], list[str]]:
    """(problems, notes) for every artefact under ``d``. A problem is a file a loader would choke on."""
    import torch
    import yaml
    from safetensors import safe_open

    from mmdistill.synth import MANIFEST_FILE, TENSORS_FILE, SyntheticSet

    problems: list[str] = []
    notes: list[str] = []
    if not d.exists():
        return problems, notes
    for p in sorted(d.rglob("*")):
        if not p.is_file() or p.name.endswith(".tmp"):
            continue
        try:
            if p.suffix == ".json":
                json.loads(p.read_text(encoding="utf-8"))
            elif p.suffix == ".jsonl":
                lines = p.read_text(encoding="utf-8").splitlines(keepends=True)
                for i, line in enumerate(lines):
                    try:
                        json.loads(line)
                    except json.JSONDecodeError:
                        if i == len(lines) - 1 and not line.endswith("\n"):
                            notes.append(f"{p.name}: torn last line (dropped on resume)")
                        else:
                            raise
            elif p.suffix in (".yaml", ".yml"):
                yaml.safe_load(p.read_text(encoding="utf-8"))
            elif p.suffix == ".safetensors":
                with safe_open(str(p), framework="pt") as f:
                    for k in f.keys():
                        f.get_tensor(k)
            elif p.suffix == ".pt":
                torch.load(p, weights_only=False)
        except Exception as e:  # noqa: BLE001 - any failure to parse is the finding
            problems.append(f"{p.relative_to(d)}: {type(e).__name__}: {e}")
    for m in sorted(d.rglob(MANIFEST_FILE)):
        if (m.parent / TENSORS_FILE).is_file():
            try:
                SyntheticSet.load(m.parent)
            except Exception as e:  # noqa: BLE001
                problems.append(f"{m.parent.relative_to(d) if m.parent != d else '.'}: synthetic set does not verify: {e}")
    tmps = tmp_files(d)
    if tmps:
        notes.append(f"{len(tmps)} leftover temp file(s): {sorted({t.name.split('.')[1] for t in tmps})}")
    return problems, notes


# ------------------------------------------------------------------------------------------------ the loop
@dataclass
class KillStats:
    kills: int = 0
    by_mode: dict[str, int] = field(default_factory=lambda: {m: 0 for m in MODES})
    launches: int = 0
    completions: int = 0
    episodes_equal: list[bool] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    max_tmp_files: int = 0
    wall_s: float = 0.0

    def summary(self) -> str:
        return (f"{self.kills} kills {self.by_mode}, {self.launches} launches, {self.completions} completed runs "
                f"(bitwise equal: {self.episodes_equal}), {len(self.problems)} corrupt-file findings, "
                f"max leftover temp files {self.max_tmp_files}, {self.wall_s:.1f} s")


def _wait_and_kill(proc: subprocess.Popen, mode: str, rng: random.Random, startup_s: float, unit_s: float,
                   progress: Callable[[], int], watch: Path, targets: tuple[str, ...], deadline: float) -> bool:
    """Kill ``proc`` at a point of kind ``mode``; False if it exited on its own first."""
    t0 = time.monotonic()
    if mode == "startup":
        target = t0 + rng.uniform(0.05, startup_s)
        cond = lambda: time.monotonic() >= target  # noqa: E731
    elif mode == "progress":
        base = progress()
        k = rng.randint(1, 4)
        extra = rng.uniform(0.0, unit_s)
        state: dict[str, float] = {}

        def cond() -> bool:
            if "at" not in state and progress() >= base + k:
                state["at"] = time.monotonic() + extra
            return "at" in state and time.monotonic() >= state["at"]
    else:  # write: first temp file of an atomic write of one of ``targets`` under ``watch``
        before = {p.name for p in tmp_files(watch)}

        def cond() -> bool:
            return any(p.name not in before and (not targets or p.name[1:].startswith(targets)) for p in tmp_files(watch))
    while proc.poll() is None:
        if cond():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        if time.monotonic() > deadline:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise TimeoutError("fault loop: a run did not finish within the deadline")
        time.sleep(0.0005 if mode == "write" else 0.002)
    return False


def kill_loop(cmd: list[str], env: dict[str, str], out: Path, n_kills: int, seed: int, *, startup_s: float, unit_s: float,
              progress: Callable[[], int], finished: Callable[[], bool], compare: Callable[[], list[str]],
              fresh: Callable[[], None], watch: Path | None = None, targets: tuple[str, ...] = (),
              budget_s: float = 600.0, modes: tuple[str, ...] = MODES) -> KillStats:
    """SIGKILL ``cmd`` ``n_kills`` times at seeded random points, rerunning it (it must resume) until it finishes.

    After every kill: :func:`scan_dir` on ``out`` (and on ``watch`` when it is another directory). When a run
    finishes, ``compare()`` lists its differences from the uninterrupted reference (empty: equal); on a difference
    the loop stops (the output is kept for inspection); if kills remain, ``fresh()`` resets the output and a new
    episode starts. A run that exits non-zero fails the loop.
    ``targets``: name prefixes of the files whose atomic writes the ``write`` mode interrupts (temp files are
    ``.<name>.<random>.tmp``; e.g. ``state.pt``, ``expert_``); empty: any file.
    """
    rng = random.Random(seed)
    st = KillStats()
    t_start = time.monotonic()
    deadline = t_start + budget_s
    watch = watch or out
    while True:
        mode = rng.choice(modes) if st.kills < n_kills else None
        st.launches += 1
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(ROOT),
                                start_new_session=True)
        if mode is None:
            _, err = proc.communicate(timeout=max(10.0, deadline - time.monotonic()))
            killed = False
        else:
            killed = _wait_and_kill(proc, mode, rng, startup_s, unit_s, progress, watch, targets, deadline)
            err = proc.stderr.read() if proc.stderr else b""
        if proc.stderr:
            proc.stderr.close()
        st.history.append(f"launch {st.launches}: {mode or 'to completion'} -> {'killed' if killed else proc.returncode} "
                          f"at progress {progress()}")
        if killed:
            st.kills += 1
            st.by_mode[mode] += 1  # type: ignore[index]
            for d in {out, watch}:
                probs, notes = scan_dir(d)
                st.problems += [f"kill {st.kills} ({mode}): {p}" for p in probs]
                st.notes += [f"kill {st.kills} ({mode}): {n}" for n in notes]
                st.max_tmp_files = max(st.max_tmp_files, len(tmp_files(d)))
            continue
        if proc.returncode != 0:
            msg = err.decode(errors="replace") if isinstance(err, bytes) else str(err)
            raise AssertionError(f"run exited with {proc.returncode} after {st.kills} kills:\n{msg[-3000:]}")
        if not finished():
            raise AssertionError("run exited 0 but its output is not complete")
        st.completions += 1
        diffs = compare()
        st.episodes_equal.append(not diffs)
        st.differences += diffs
        probs, notes = scan_dir(out)
        st.problems += [f"after completion: {p}" for p in probs]
        if st.kills >= n_kills or diffs:
            break
        fresh()
    st.wall_s = time.monotonic() - t_start
    return st
