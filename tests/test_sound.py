"""mmbook.sound: clips made mono 16 kHz float, bad clips refused, WAV files written (Chapters 2, 8, 10)."""

from __future__ import annotations

import wave

import numpy as np
import pytest
from mmbook import sound
from mmbook.errors import InputError


def test_audio_is_made_mono_16k_float() -> None:
    stereo = (np.sin(np.arange(8000) / 5)[:, None] * [10_000, 20_000]).astype(np.int16)
    out = sound.prepare_audio(stereo, 8000)
    assert out.dtype == np.float32 and out.ndim == 1 and len(out) == 16_000
    assert np.abs(out).max() == pytest.approx(15_000 / 32768, rel=0.05)
    same = sound.prepare_audio(np.sin(np.arange(16_000) / 5).astype(np.float32) * 0.5, 16_000)
    assert len(same) == 16_000
    unsigned = sound.prepare_audio((np.sin(np.arange(8000) / 5) * 100 + 128).astype(np.uint8), 8000)
    assert abs(float(unsigned.mean())) < 0.01


@pytest.mark.parametrize(
    ("samples", "rate", "message"),
    [
        (np.zeros(0, np.int16), 8000, "empty"),
        (np.zeros(8000, np.int16), 8000, "silent"),
        (np.ones(100, np.int16) * 1000, 8000, "at least 100 ms"),
        (np.ones(8000 * 31, np.int16) * 1000, 8000, "lasts 31.0 s"),
        (np.ones(8000, np.int16), 10, "sample rate"),
        (np.full(8000, np.inf, np.float32), 8000, "NaN or infinite"),
    ],
)
def test_bad_audio_is_refused(samples, rate, message) -> None:
    with pytest.raises(InputError, match=message):
        sound.prepare_audio(samples, rate)




def test_int16_keeps_loudness_and_wav_round_trips(tmp_path) -> None:
    quiet = np.array([0.0, 0.25, -0.25, 2.0, -2.0])
    assert sound.to_int16(quiet).tolist() == [0, 8192, -8192, 32767, -32767]  # clipped, not rescaled
    path = sound.write_wav(tmp_path / "clip.wav", quiet, 8000)
    with wave.open(str(path)) as clip:
        assert (clip.getnchannels(), clip.getsampwidth(), clip.getframerate()) == (1, 2, 8000)
        frames = np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2")
    np.testing.assert_array_equal(frames, sound.to_int16(quiet))
