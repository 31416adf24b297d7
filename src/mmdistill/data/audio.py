"""Audio front end: waveform -> log-mel spectrogram.

Pipeline for one clip (``logmel``) or many (``logmel_batch``, chunked to bound memory):

1. **Fixed duration** (``fix_duration``): a clip longer than ``duration_s`` is centre-cropped; a shorter
   one is zero-padded symmetrically (the clip sits in the middle of the window).
2. **STFT**: ``torch.stft`` with a periodic Hann window of ``n_fft`` samples, hop
   ``round(duration_s * sr / frames)`` (8 kHz, 1 s, 64 frames -> 125), ``center=True`` with reflect
   padding; power spectrum ``|X|^2``.
3. **Mel filterbank** (``mel_filterbank``): HTK mel scale ``mel(f) = 2595 * log10(1 + f / 700)``;
   ``n_mels`` triangular filters with peak 1 whose edges are equally spaced in mel between ``fmin``
   and ``fmax`` (default ``sr / 2``); no area normalisation. Applied to the power spectrum.
4. ``log(mel + 1e-6)``, then keep the first ``frames`` frames (``center=True`` gives ``frames + 1``); if a
   parameter combination gives fewer, the last frame is repeated.

Output: float32 (1, n_mels, frames) per clip.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

LOG_EPS = 1e-6


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 2595 * log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK filters with peak 1 (no area normalisation)."""
    fmax = sr / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sr / 2.0:
        raise ValueError(f"need 0 <= fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}, sr={sr}")
    fft_hz = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lo, ctr, hi = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    up = (fft_hz[None, :] - lo) / (ctr - lo)
    down = (hi - fft_hz[None, :]) / (hi - ctr)
    return np.maximum(0.0, np.minimum(up, down)).astype(np.float32)


def fix_duration(wave: np.ndarray, n_samples: int) -> np.ndarray:
    """Centre-crop or symmetrically zero-pad a 1-D waveform to ``n_samples``."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    n = wave.shape[0]
    if n >= n_samples:
        start = (n - n_samples) // 2
        return wave[start : start + n_samples].copy()
    left = (n_samples - n) // 2
    return np.pad(wave, (left, n_samples - n - left))


def hop_length(sr: int, frames: int, duration_s: float) -> int:
    return max(1, int(round(duration_s * sr / frames)))


def logmel_batch(
    waves: Sequence[np.ndarray],
    sr: int,
    n_mels: int = 64,
    frames: int = 64,
    duration_s: float = 1.0,
    n_fft: int = 256,
    fmin: float = 0.0,
    fmax: float | None = None,
    chunk: int = 256,
) -> Tensor:
    """Log-mel spectrograms of many clips, (N, 1, n_mels, frames) float32; STFT runs ``chunk`` clips at a time."""
    n_samples = int(round(duration_s * sr))
    hop = hop_length(sr, frames, duration_s)
    fb = torch.from_numpy(mel_filterbank(sr, n_fft, n_mels, fmin, fmax))
    window = torch.hann_window(n_fft)
    out = torch.empty(len(waves), 1, n_mels, frames)
    for s in range(0, len(waves), chunk):
        x = torch.from_numpy(np.stack([fix_duration(w, n_samples) for w in waves[s : s + chunk]]))
        spec = torch.stft(x, n_fft=n_fft, hop_length=hop, window=window, center=True, pad_mode="reflect", return_complex=True)
        mel = torch.matmul(fb, spec.abs().pow_(2))  # (B, n_mels, T)
        lm = torch.log(mel + LOG_EPS)
        t = lm.shape[-1]
        if t >= frames:
            lm = lm[..., :frames]
        else:  # only for unusual frames/duration combinations: repeat the last frame
            lm = torch.nn.functional.pad(lm, (0, frames - t), mode="replicate")
        out[s : s + len(x), 0] = lm
    return out


def logmel(
    wave: np.ndarray,
    sr: int,
    n_mels: int = 64,
    frames: int = 64,
    duration_s: float = 1.0,
    n_fft: int = 256,
    fmin: float = 0.0,
    fmax: float | None = None,
) -> Tensor:
    """Log-mel spectrogram of one clip, (1, n_mels, frames) float32 (see the module docstring)."""
    return logmel_batch([wave], sr, n_mels, frames, duration_s, n_fft, fmin, fmax)[0]


def add_noise_at_snr(wave: np.ndarray, snr_db: float, rng: np.random.Generator, signal_power: float | None = None) -> np.ndarray:
    """``wave`` plus white Gaussian noise with power ``signal_power / 10**(snr_db/10)``.

    ``signal_power`` defaults to the mean square of ``wave``; pass the power of the original (unpadded)
    clip when ``wave`` has been zero-padded, so padding does not lower the noise level.
    """
    wave = np.asarray(wave, dtype=np.float32)
    p_sig = float(np.mean(wave.astype(np.float64) ** 2)) if signal_power is None else float(signal_power)
    sigma = np.sqrt(p_sig / (10.0 ** (snr_db / 10.0)))
    return wave + (rng.standard_normal(wave.shape[0]) * sigma).astype(np.float32)


__all__ = ["logmel", "logmel_batch", "mel_filterbank", "fix_duration", "hop_length", "add_noise_at_snr", "hz_to_mel", "mel_to_hz"]
