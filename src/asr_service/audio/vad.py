"""Speech spans from Silero VAD, merged into phrases and split to the model's maximum segment length.

GLM-ASR has no timestamps, so these spans are the transcript's timeline. Silence and noise give no spans, which is
how a silent call gets an empty transcript instead of invented words.
"""

import threading
from dataclasses import dataclass

import numpy as np
import torch

from asr_service.audio.decode import SAMPLE_RATE

_threads_before_import = torch.get_num_threads()
import silero_vad  # noqa: E402  (sets torch's global thread count to 1 on import; undone below)

torch.set_num_threads(_threads_before_import)


@dataclass(frozen=True)
class SpeechSpan:
    start: int
    """First sample (16 kHz)."""
    end: int
    """One past the last sample."""

    @property
    def start_seconds(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_seconds(self) -> float:
        return self.end / SAMPLE_RATE


@dataclass(frozen=True)
class VadParams:
    threshold: float
    min_speech_ms: int
    min_silence_ms: int
    speech_pad_ms: int
    max_segment_seconds: float
    merge_gap_seconds: float


class SpeechDetector:
    """Owns one Silero model. The model is stateful while it scans a file, so calls are serialised."""

    def __init__(self, params: VadParams) -> None:
        self._params = params
        self._model = silero_vad.load_silero_vad(onnx=True)
        self._lock = threading.Lock()

    def detect_speech(self, samples: np.ndarray) -> list[SpeechSpan]:
        p = self._params
        if samples.size < 512:
            return []
        levelled = level_for_vad(samples)
        with self._lock:
            raw = silero_vad.get_speech_timestamps(
                torch.from_numpy(levelled),
                self._model,
                threshold=p.threshold,
                sampling_rate=SAMPLE_RATE,
                min_speech_duration_ms=p.min_speech_ms,
                min_silence_duration_ms=p.min_silence_ms,
                speech_pad_ms=p.speech_pad_ms,
                max_speech_duration_s=p.max_segment_seconds,
            )
        spans = [SpeechSpan(int(s["start"]), min(int(s["end"]), samples.size)) for s in raw]
        max_samples = int(p.max_segment_seconds * SAMPLE_RATE)
        merged = merge_spans(spans, int(p.merge_gap_seconds * SAMPLE_RATE), max_samples)
        return [piece for span in merged for piece in split_span(span, max_samples)]


LEVEL_FRAME_SECONDS = 0.1
LEVEL_REFERENCE_PERCENTILE = 99.5
"""The loudest 0.5 % of 100 ms frames: speech, if there is any, even in a long call that is mostly silence."""
LEVEL_TARGET_RMS = 0.1
"""-20 dBFS, ordinary speech level."""
LEVEL_MAX_GAIN = 100.0
"""At most +40 dB."""


def level_for_vad(samples: np.ndarray) -> np.ndarray:
    """The audio with one gain that brings its loudest passages to ordinary speech level (a copy if scaled).

    Silero misses quiet speech (GLM-ASR's strength: callers far from the phone, low-gain lines). One gain for the
    whole signal keeps speech louder than the line noise between it; boosting each quiet stretch on its own would
    turn hiss into loud noise, after which Silero misses the next utterance. The model still hears the original.
    """
    frame = int(LEVEL_FRAME_SECONDS * SAMPLE_RATE)
    frames = samples[: samples.size // frame * frame].reshape(-1, frame) if samples.size >= frame else samples[None]
    rms = np.sqrt(np.einsum("ij,ij->i", frames, frames) / frames.shape[1])  # no full-length squared copy
    reference = float(np.percentile(rms, LEVEL_REFERENCE_PERCENTILE))
    gain = min(LEVEL_MAX_GAIN, max(1.0, LEVEL_TARGET_RMS / reference)) if reference > 0 else 1.0
    if gain == 1.0:
        return samples  # ordinary loudness: no copy (a 4-hour call is 0.9 GB of samples)
    return np.multiply(samples, np.float32(gain), dtype=np.float32)


def merge_spans(spans: list[SpeechSpan], max_gap: int, max_length: int) -> list[SpeechSpan]:
    """Join neighbours separated by less than `max_gap` samples while the result stays within `max_length`."""
    merged: list[SpeechSpan] = []
    for span in spans:
        if merged and span.start - merged[-1].end <= max_gap and span.end - merged[-1].start <= max_length:
            merged[-1] = SpeechSpan(merged[-1].start, max(merged[-1].end, span.end))
        else:
            merged.append(span)
    return merged


def split_span(span: SpeechSpan, max_length: int) -> list[SpeechSpan]:
    """Cut a span longer than `max_length` into equal pieces (Silero already prefers cuts at pauses)."""
    length = span.end - span.start
    if length <= max_length:
        return [span]
    pieces = -(-length // max_length)
    bounds = np.linspace(span.start, span.end, pieces + 1).round().astype(int)
    return [SpeechSpan(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
