"""Audio input: the sound track of a video (or an audio file) as 16 kHz mono samples.

Read with decord's `AudioReader`, the library that already reads vistool's video frames:
it decodes through FFmpeg, resamples and mixes down to mono on the way, so no second
media library is needed at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from vistool.errors import VideoLoadError

SAMPLING_RATE = 16_000  # what Gemma 4's audio feature extractor expects


@dataclass
class AudioClip:
    """Mono audio samples (float32, -1..1) at `sampling_rate` Hz.

    `duration` is the length in seconds of `samples`; `source_duration` the length of
    the whole track it was cut from (longer when it was clipped to a model's limit).
    """

    samples: np.ndarray
    sampling_rate: int
    source: str = ""
    source_duration: float = 0.0

    @property
    def duration(self) -> float:
        """Seconds of audio held."""
        return len(self.samples) / float(self.sampling_rate)

    @property
    def clipped(self) -> bool:
        """True when the track was longer than what is held."""
        return self.source_duration > self.duration + 1e-3


def read_audio(path: str | os.PathLike, max_seconds: float | None = 30.0, sampling_rate: int = SAMPLING_RATE) -> AudioClip:
    """Read the sound track of a video (or an audio file) as mono samples.

    Takes the file, the most seconds to keep (from the start; None: all of it) and the
    sampling rate to resample to. Returns an `AudioClip`. Raises `VideoLoadError`
    ("cannot read audio of <path>: <reason>") for a missing or empty file, a file
    without a sound track, or one decord cannot decode.
    """
    source = os.fsdecode(os.fspath(path))

    def fail(reason: str) -> VideoLoadError:
        return VideoLoadError(f"cannot read audio of {source}: {reason}")

    if max_seconds is not None and not max_seconds > 0:
        raise fail(f"max_seconds must be positive or None, got {max_seconds!r}")
    if not os.path.isfile(source):
        raise fail("no such file")
    if os.path.getsize(source) == 0:
        raise fail("file is empty (0 bytes)")

    import decord  # slow to import; only audio and video need it

    try:
        reader = decord.AudioReader(source, ctx=decord.cpu(0), sample_rate=sampling_rate, mono=True)
    except Exception as error:  # DECORDError with a C++ log line
        message = str(error)
        if "audio stream" in message.lower():
            raise fail("the file has no sound track") from error
        raise fail("not a media file, or a format decord cannot read") from error
    try:
        total = int(reader.shape[1])
        keep = total if max_seconds is None else min(total, int(round(max_seconds * sampling_rate)))
        if keep <= 0:
            raise fail("the sound track is empty")
        samples = reader[0:keep].asnumpy().reshape(-1).astype(np.float32, copy=False)
    finally:
        del reader
    return AudioClip(samples=samples, sampling_rate=sampling_rate, source=source, source_duration=total / sampling_rate)


__all__ = ["SAMPLING_RATE", "AudioClip", "read_audio"]
