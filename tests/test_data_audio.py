"""Audio front end (data/audio.py): filterbank, fixed duration, log-mel shapes, SNR noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmdistill.data.audio import add_noise_at_snr, fix_duration, hop_length, hz_to_mel, logmel, logmel_batch, mel_filterbank, mel_to_hz


def test_htk_mel_scale_round_trip() -> None:
    f = np.array([0.0, 100.0, 700.0, 4000.0])
    assert np.allclose(mel_to_hz(hz_to_mel(f)), f)
    assert hz_to_mel(700.0) == pytest.approx(2595 * np.log10(2))


def test_filterbank_triangles() -> None:
    fb = mel_filterbank(8000, 256, 64)
    assert fb.shape == (64, 129)
    assert fb.min() >= 0 and fb.max() <= 1
    assert (fb.sum(1) > 0).all()  # no empty filter at 64 mels / 129 bins
    peaks = fb.argmax(1)
    assert (np.diff(peaks) >= 0).all()  # centres increase with the filter index


def test_fix_duration_centre_crop_and_symmetric_pad() -> None:
    w = np.arange(10, dtype=np.float32)
    assert fix_duration(w, 4).tolist() == [3, 4, 5, 6]
    p = fix_duration(w, 14)
    assert p.shape == (14,) and p[:2].tolist() == [0, 0] and p[-2:].tolist() == [0, 0] and p[2:12].tolist() == w.tolist()


def test_logmel_shapes_and_determinism() -> None:
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) for n in (1000, 8000, 12000)]
    out = logmel_batch(waves, 8000, chunk=2)
    assert out.shape == (3, 1, 64, 64) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(out[1], logmel(waves[1], 8000))
    assert logmel(waves[0], 8000, n_mels=40, frames=32, duration_s=0.5).shape == (1, 40, 32)
    assert hop_length(8000, 64, 1.0) == 125


def test_tone_lands_in_the_right_band() -> None:
    t = np.arange(8000) / 8000
    lo = logmel(np.sin(2 * np.pi * 300 * t).astype(np.float32), 8000)[0].mean(1)
    hi = logmel(np.sin(2 * np.pi * 3000 * t).astype(np.float32), 8000)[0].mean(1)
    assert int(lo.argmax()) < int(hi.argmax())


def test_noise_at_snr() -> None:
    w = np.sin(np.linspace(0, 200, 8000)).astype(np.float32)
    noisy = add_noise_at_snr(w, 0.0, np.random.default_rng(0))
    p_sig, p_noise = np.mean(w**2), np.mean((noisy - w) ** 2)
    assert 10 * np.log10(p_sig / p_noise) == pytest.approx(0.0, abs=0.2)
    assert np.array_equal(noisy, add_noise_at_snr(w, 0.0, np.random.default_rng(0)))
