"""Audio files made at test time from ../shared/audio clips, encoded by the real FFmpeg encoders inside PyAV."""

import csv
import io
import os
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from asr_service.audio.decode import SAMPLE_RATE, DecodeLimits, decode_audio

REPO = Path(__file__).resolve().parents[1]
AUDIO_DIR = Path(os.environ.get("ASR_TEST_AUDIO_DIR", REPO.parent / "shared" / "audio"))


@dataclass(frozen=True)
class Clip:
    file: str
    language: str
    duration: float
    channels: int
    reference: str

    @property
    def path(self) -> Path:
        return AUDIO_DIR / self.file


def manifest() -> list[Clip]:
    with open(AUDIO_DIR / "manifest.tsv", encoding="utf-8") as f:
        return [
            Clip(r["file"], r["language"], float(r["duration_s"]), int(r["channels"]), r["reference_text"])
            for r in csv.DictReader(f, delimiter="\t")
        ]


def clip_samples(name: str) -> np.ndarray:
    """A shared clip as float32 (channels, n) at 16 kHz."""
    return decode_audio((AUDIO_DIR / name).read_bytes(), DecodeLimits(max_seconds=3600)).samples


@dataclass(frozen=True)
class Format:
    name: str
    container: str
    codec: str
    rate: int
    channels: int = 1
    options: tuple[tuple[str, str], ...] = ()


FORMATS = [
    Format("wav-pcm16", "wav", "pcm_s16le", 16_000),
    Format("wav-alaw-8k", "wav", "pcm_alaw", 8_000),
    Format("wav-mulaw-8k", "wav", "pcm_mulaw", 8_000),
    Format("mp3-44k-stereo", "mp3", "libmp3lame", 44_100, channels=2),
    Format("flac-48k", "flac", "flac", 48_000),
    Format("ogg-vorbis", "ogg", "vorbis", 44_100, channels=2, options=(("strict", "experimental"),)),
    Format("opus", "ogg", "libopus", 48_000),
    Format("amr-nb-8k", "amr", "libopencore_amrnb", 8_000, options=(("b", "12200"),)),
    Format("m4a-aac", "ipod", "aac", 44_100),
]


def encode(samples: np.ndarray, fmt: Format) -> bytes:
    """Encode (channels, n) float32 16 kHz samples into `fmt`, resampling and up/down-mixing as it needs."""
    layout = {1: "mono", 2: "stereo"}.get(fmt.channels, f"{fmt.channels}c")
    source = samples if samples.shape[0] == fmt.channels else np.repeat(samples.mean(0, keepdims=True), fmt.channels, 0)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt.container) as out:
        stream = out.add_stream(fmt.codec, rate=fmt.rate, options=dict(fmt.options))
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(source, dtype=np.float32), format="fltp", layout=layout)
        frame.sample_rate = SAMPLE_RATE
        resampler = av.AudioResampler(format=stream.codec_context.format, layout=layout, rate=fmt.rate)
        for resampled in resampler.resample(frame):
            for packet in stream.encode(resampled):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit PCM WAV of (channels, n) samples at `rate` (stdlib writer: any channel count, even 0 samples)."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").T.tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(samples.shape[0])
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buf.getvalue()


def float_wav_bytes(samples: np.ndarray) -> bytes:
    """A mono 32-bit float WAV at 16 kHz; float WAVs can carry NaN, which a corrupt recorder may write."""
    return encode(samples.reshape(1, -1), Format("wav-float", "wav", "pcm_f32le", SAMPLE_RATE))


@dataclass(frozen=True)
class Placement:
    """A shared clip placed into a synthetic call."""

    at: float
    clip: str
    channel: int = 0


def build_call(
    placements: list[Placement], seconds: float, channels: int = 1, noise: float = 0.002, seed: int = 0
) -> np.ndarray:
    """A call of `seconds` with line hiss everywhere and the given clips at their times: (channels, n) float32."""
    rng = np.random.default_rng(seed)
    call = (rng.standard_normal((channels, int(seconds * SAMPLE_RATE))) * noise).astype(np.float32)
    for p in placements:
        clip = clip_samples(p.clip).mean(axis=0)
        start = int(p.at * SAMPLE_RATE)
        call[p.channel, start : start + clip.size] += clip[: call.shape[1] - start]
    return call


def hold_music(seconds: float) -> np.ndarray:
    """A synthetic hold melody (sine chords, changing every half second), mono float32 at 16 kHz."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    notes = np.array([261.6, 329.6, 392.0, 523.3, 440.0, 349.2])
    base = notes[(t * 2).astype(int) % notes.size]
    return (0.15 * (np.sin(2 * np.pi * base * t) + 0.5 * np.sin(2 * np.pi * 1.5 * base * t))).astype(np.float32)
