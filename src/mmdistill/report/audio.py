"""Listen to a log-mel spectrogram: mel pseudo-inverse, Griffin-Lim phase recovery, WAV bytes.

The forward front end is :mod:`mmdistill.data.audio` (``torch.stft`` with a periodic Hann window,
``center=True``, power spectrum, HTK mel filterbank, ``log(mel + 1e-6)``). Inversion, step by step:

1. ``mel = exp(logmel) - 1e-6`` (clipped at 0): mel power per band and frame.
2. Linear power ``P = pinv(fb) @ mel`` (clipped at 0), magnitude ``sqrt(P)``: the least-squares
   spectrum whose mel projection is closest to the observed one.
3. Griffin-Lim (``iters`` rounds): attach the current phase to the target magnitude, ``istft``, ``stft``
   again, keep the new phase. The start phase comes from a seeded generator, so the output is
   deterministic. ``scipy.signal.stft`` scales by ``1 / sum(window)`` where ``torch.stft`` does not; the
   target magnitude is divided by that sum so levels match.
4. Peak-normalise to 0.9 and write 16-bit PCM WAV.

The result is a rough but recognisable rendering (phase is lost, mel bands blur the spectrum); it is
for listening, not for metrics.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy.signal import get_window, istft, stft

from ..data.audio import LOG_EPS, mel_filterbank


@dataclass(frozen=True)
class Frontend:
    """The log-mel parameters needed to invert a spectrogram (a dataset's ``meta["audio_frontend"]``)."""

    sr: int
    n_fft: int
    hop: int
    n_mels: int
    frames: int
    duration_s: float

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> "Frontend":
        """Build from ``meta["audio_frontend"]``; raises KeyError/ValueError when a field is missing or bad."""
        fe = cls(sr=int(meta["sr"]), n_fft=int(meta["n_fft"]), hop=int(meta["hop"]), n_mels=int(meta["n_mels"]),
                 frames=int(meta["frames"]), duration_s=float(meta["duration_s"]))
        if min(fe.sr, fe.n_fft, fe.hop, fe.n_mels, fe.frames) <= 0 or fe.duration_s <= 0:
            raise ValueError(f"audio front end has a non-positive field: {fe}")
        return fe


def mel_to_magnitude(logmel: np.ndarray, fe: Frontend) -> np.ndarray:
    """(n_mels, T) log-mel power -> (n_fft//2+1, T) linear magnitude via the filterbank pseudo-inverse."""
    logmel = np.asarray(logmel, dtype=np.float64)
    if logmel.ndim != 2 or logmel.shape[0] != fe.n_mels:
        raise ValueError(f"expected a ({fe.n_mels}, T) log-mel, got shape {logmel.shape}")
    mel = np.maximum(np.exp(np.minimum(logmel, 50.0)) - LOG_EPS, 0.0)
    fb = mel_filterbank(fe.sr, fe.n_fft, fe.n_mels).astype(np.float64)
    power = np.maximum(np.linalg.pinv(fb) @ mel, 0.0)
    return np.sqrt(power)


def griffin_lim(magnitude: np.ndarray, fe: Frontend, iters: int = 32, seed: int = 0) -> np.ndarray:
    """Waveform (duration_s * sr samples, float64) whose STFT magnitude approximates ``magnitude`` (torch.stft scale)."""
    n_samples = int(round(fe.duration_s * fe.sr))
    win = get_window("hann", fe.n_fft)  # periodic, like torch.hann_window
    kw = {"fs": fe.sr, "window": win, "nperseg": fe.n_fft, "noverlap": fe.n_fft - fe.hop}
    _, _, probe = stft(np.zeros(n_samples), **kw)
    n_frames = probe.shape[1]
    target = np.zeros(probe.shape, dtype=np.float64)
    t = min(n_frames, magnitude.shape[1])
    target[:, :t] = magnitude[:, :t] / win.sum()
    rng = np.random.default_rng(seed)
    spec = target * np.exp(2j * np.pi * rng.random(target.shape))
    wave = np.zeros(n_samples)
    for _ in range(max(1, iters)):
        _, wave = istft(spec, **kw)
        wave = _fit(wave, n_samples)
        _, _, rebuilt = stft(wave, **kw)
        spec = target * np.exp(1j * np.angle(rebuilt[:, :n_frames]))
    _, wave = istft(spec, **kw)
    return _fit(wave, n_samples)


def _fit(wave: np.ndarray, n: int) -> np.ndarray:
    wave = np.real(wave)
    return wave[:n] if wave.shape[0] >= n else np.pad(wave, (0, n - wave.shape[0]))


def wav_bytes(wave: np.ndarray, sr: int, peak: float = 0.9) -> bytes:
    """16-bit PCM WAV of ``wave`` peak-normalised to ``peak`` (silence stays silence)."""
    import soundfile as sf

    wave = np.asarray(wave, dtype=np.float64)
    m = float(np.max(np.abs(wave))) if wave.size else 0.0
    out = (wave * (peak / m) if m > 0 else wave).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, out, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def logmel_to_wav(logmel: np.ndarray, fe: Frontend, iters: int = 32, seed: int = 0) -> bytes:
    """Log-mel (n_mels, frames) -> WAV bytes (steps 1-4 of the module docstring)."""
    return wav_bytes(griffin_lim(mel_to_magnitude(logmel, fe), fe, iters=iters, seed=seed), fe.sr)
