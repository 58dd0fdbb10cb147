"""Audio of a video: a clip with a tone track made on the spot, read back, and heard by the
tiny Gemma 4 built with its audio tower (the request carries the right audio tokens)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vistool.api import Vistool
from vistool.errors import VideoLoadError, VistoolError
from vistool.io.audio import read_audio
from vistool.runtime.replay import ReplayBackend
from vistool.runtime.types import GenerationRequest

EXAMPLES = Path(__file__).resolve().parents[1] / "vistool" / "app" / "examples"


def write_clip_with_tone(path: Path, seconds: float = 2.0, fps: int = 8, rate: int = 16_000, frequency: float = 440.0) -> Path:
    """Write an mp4 (MPEG-4 video, AAC mono sound) with changing grey frames and a sine tone, with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        sound = container.add_stream("aac", rate=rate)
        sound.layout = "mono"
        for index in range(int(seconds * fps)):
            frame = np.full((64, 96, 3), (index * 30) % 255, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        wave = (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
        for start in range(0, len(wave), 1024):
            chunk = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format="flt", layout="mono")
            chunk.sample_rate, chunk.pts = rate, start
            for packet in sound.encode(chunk):
                container.mux(packet)
        for packet in sound.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def tone_clip(tmp_path_factory) -> Path:
    return write_clip_with_tone(tmp_path_factory.mktemp("audio") / "tone.mp4")


@pytest.fixture(scope="module")
def tiny_audio_backend(tmp_path_factory):
    from vistool.runtime.tiny import make_tiny_model
    from vistool.runtime.transformers_backend import TransformersBackend

    folder = make_tiny_model(tmp_path_factory.mktemp("tiny-gemma4-audio"), seed=0, audio=True)
    return TransformersBackend(str(folder), device="cpu", dtype="float32")


def test_the_sound_track_is_read_as_16khz_mono_with_its_tone(tone_clip):
    clip = read_audio(tone_clip)
    assert clip.sampling_rate == 16_000 and clip.samples.ndim == 1 and clip.samples.dtype == np.float32
    assert 2.0 <= clip.duration < 2.2 and not clip.clipped
    spectrum = np.abs(np.fft.rfft(clip.samples))
    assert abs(np.argmax(spectrum) * clip.sampling_rate / len(clip.samples) - 440.0) < 5.0
    short = read_audio(tone_clip, max_seconds=0.5)
    assert short.duration == pytest.approx(0.5) and short.clipped
    np.testing.assert_allclose(short.samples, clip.samples[:8000])


def test_a_video_without_sound_and_a_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(VideoLoadError, match="has no sound track"):
        read_audio(EXAMPLES / "clip.webm")
    with pytest.raises(VideoLoadError, match="no such file"):
        read_audio(tmp_path / "missing.mp4")


def test_the_request_carries_one_audio_token_per_40_ms(tiny_audio_backend, tone_clip):
    clip = read_audio(tone_clip)
    inputs = tiny_audio_backend._prepare([GenerationRequest(prompt="What do you hear?", audio=clip)]).inputs
    tokenizer = tiny_audio_backend.tokenizer
    ids = inputs["input_ids"][0].tolist()
    audio_tokens = ids.count(tokenizer.convert_tokens_to_ids("<|audio|>"))
    assert audio_tokens == math.floor(clip.duration * 1000 / 40)  # 2.048 s -> 51 tokens
    start = ids.index(tokenizer.convert_tokens_to_ids("<|audio>"))
    assert ids[start + audio_tokens + 1] == tokenizer.convert_tokens_to_ids("<audio|>")
    assert inputs["input_features"].shape[-1] == 128  # mel bins


def test_video_with_audio_runs_on_the_tiny_model(tiny_audio_backend, tone_clip):
    vt = Vistool(tiny_audio_backend)
    heard = vt.video(tone_clip, "What do you hear?", frames=4, audio=True, max_new_tokens=8)
    silent = vt.video(tone_clip, "What do you hear?", frames=4, max_new_tokens=8)
    assert heard.ok and silent.ok, (heard.error, silent.error)
    assert heard.extras["audio_seconds"] == pytest.approx(2.048, abs=0.06)
    assert heard.provenance["audio_seconds"] == pytest.approx(heard.extras["audio_seconds"], abs=1e-3)
    assert heard.provenance["prompt_tokens"] > silent.provenance["prompt_tokens"] + 50
    assert len(heard.extras["timestamps"]) == 4


def test_families_and_models_without_audio_refuse(tiny_backend, tone_clip):
    with pytest.raises(VistoolError, match="cannot hear audio"):
        Vistool(tiny_backend).video(tone_clip, "What do you hear?", audio=True)  # no audio tower
    with pytest.raises(VistoolError, match="takes no audio"):
        Vistool(ReplayBackend(["x"], profile_name="qwen3vl")).video(tone_clip, "What do you hear?", audio=True)
    with pytest.raises(VistoolError, match="cannot hear audio"):
        Vistool(ReplayBackend(["x"])).video(tone_clip, "What do you hear?", audio=True)
