"""Offline text-to-speech through Debian's command-line synthesisers (``espeak-ng`` and ``flite``).

One utterance = one subprocess writing a WAV to a temporary file, read back with ``soundfile``, mixed to mono
and resampled (polyphase, ``scipy.signal.resample_poly``) to the caller's sample rate.

* ``espeak-ng`` (GPL-3.0; formant synthesis): ``-v <voice>[+<variant>] -s <rate wpm> -p <pitch 0-99>``.
* ``flite`` (CMU Flite 2.2, BSD-like licence): ``-voice kal|awb|rms|slt``; speaking rate through
  ``--setf duration_stretch=<x>`` and pitch through ``--setf int_f0_target_mean=<Hz>``. ``awb``, ``rms`` and
  ``slt`` are CMU ARCTIC voices built from recordings of real speakers; ``kal`` is a diphone voice.

The synthesisers' outputs are not covered by their programs' licences (output of a program is the user's), but
the speech is synthetic: datasets built from it say so. A missing binary raises :class:`DataError` naming the
Debian package and ``make tts``. Synthesis is deterministic for a fixed binary version (both engines are).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from math import gcd
from typing import Literal, Sequence

import numpy as np

from ..errors import DataError

Engine = Literal["espeak-ng", "flite"]
ENGINES: dict[str, str] = {"espeak-ng": "espeak-ng", "flite": "flite"}  # engine -> Debian package
FLITE_VOICES = ("kal", "awb", "rms", "slt")
TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Voice:
    """One synthesiser setting. ``rate``: espeak-ng words per minute, flite ``duration_stretch`` (1 = normal,
    > 1 slower). ``pitch``: espeak-ng 0-99, flite mean F0 in Hz (0 = the voice's default)."""

    engine: Engine
    name: str
    rate: float
    pitch: float

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}:r{self.rate:g}:p{self.pitch:g}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def require_binary(engine: str) -> str:
    """Path of the engine's executable, or a DataError naming the Debian package."""
    if engine not in ENGINES:
        raise DataError(f"unknown TTS engine {engine!r}; expected one of {', '.join(ENGINES)}")
    path = shutil.which(engine)
    if path is None:
        pkg = ENGINES[engine]
        raise DataError(f"text-to-speech needs the {engine!r} program, which is not installed: "
                        f"`apt-get install {pkg}` (Debian package {pkg}, as root) or `make tts`")
    return path


def engine_version(engine: str) -> str:
    """First line of ``<engine> --version`` (part of a dataset's cache key: outputs depend on it)."""
    exe = require_binary(engine)
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=TIMEOUT_S)
    lines = [ln.strip() for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
    return next((ln for ln in lines if "version" in ln.lower() or "espeak" in ln.lower()), lines[0] if lines else "?")


def _command(v: Voice, exe: str, text: str, wav: str) -> list[str]:
    if v.engine == "espeak-ng":
        return [exe, "-v", v.name, "-s", str(int(round(v.rate))), "-p", str(int(round(v.pitch))), "-w", wav, "--", text]
    if v.name not in FLITE_VOICES:
        raise DataError(f"flite voice {v.name!r} unknown; expected one of {', '.join(FLITE_VOICES)}")
    cmd = [exe, "-voice", v.name, "--setf", f"duration_stretch={v.rate:g}"]
    if v.pitch > 0:
        cmd += ["--setf", f"int_f0_target_mean={v.pitch:g}"]
    return cmd + ["-t", text, "-o", wav]


def resample(wave: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling to ``target_sr`` (identity when equal)."""
    if sr == target_sr:
        return wave.astype(np.float32)
    from scipy.signal import resample_poly

    g = gcd(sr, target_sr)
    return resample_poly(wave, target_sr // g, sr // g).astype(np.float32)


def synthesize(text: str, voice: Voice, sample_rate: int) -> np.ndarray:
    """float32 mono waveform of ``text`` spoken by ``voice`` at ``sample_rate``."""
    import soundfile as sf

    exe = require_binary(voice.engine)
    fd, wav = tempfile.mkstemp(prefix="mmdistill-tts-", suffix=".wav")
    os.close(fd)
    try:
        res = subprocess.run(_command(voice, exe, text, wav), capture_output=True, text=True, timeout=TIMEOUT_S)
        if res.returncode != 0:
            raise DataError(f"{voice.engine} failed on {text!r} with voice {voice.id} (exit {res.returncode}): "
                            f"{res.stderr.strip()[:300]}")
        try:
            w, sr = sf.read(wav, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as e:
            raise DataError(f"{voice.engine} wrote an unreadable WAV for {text!r} (voice {voice.id}): {e}") from None
    finally:
        try:
            os.unlink(wav)
        except OSError:
            pass
    if w.shape[0] == 0:
        raise DataError(f"{voice.engine} produced no samples for {text!r} (voice {voice.id})")
    return resample(w.mean(axis=1), int(sr), sample_rate)


def synthesize_many(jobs: Sequence[tuple[str, Voice]], sample_rate: int, workers: int = 2) -> list[np.ndarray]:
    """``synthesize`` over (text, voice) jobs, ``workers`` subprocesses at a time; results in job order."""
    for eng in {v.engine for _, v in jobs}:
        require_binary(eng)
    if workers <= 1 or len(jobs) < 2:
        return [synthesize(t, v, sample_rate) for t, v in jobs]
    with ThreadPoolExecutor(max_workers=workers) as ex:  # the work happens in the child processes
        return list(ex.map(lambda tv: synthesize(tv[0], tv[1], sample_rate), jobs))


__all__ = ["Voice", "ENGINES", "FLITE_VOICES", "require_binary", "engine_version", "synthesize", "synthesize_many", "resample"]
