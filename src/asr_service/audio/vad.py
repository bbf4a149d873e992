"""Speech spans from Silero VAD, found block by block, merged into phrases and split to the engine's segment length.

GLM-ASR has no timestamps, so these spans are the transcript's timeline. Silence and noise give no spans, which is
how a silent call gets an empty transcript instead of invented words.

Why not `silero_vad.get_speech_timestamps`: it scans a whole signal in one call while holding the model, so one
45-minute call blocked every other request's segmentation. Here the ONNX session is stateless (onnxruntime runs it
from many threads at once and releases the GIL), and each `SpeechStream` carries its own LSTM state, so a call is
scanned a block at a time on any preprocessing thread, its spans come out as soon as they are final, and the result
is identical to Silero's whole-signal scan (same windows, same state, same decision rules, ported below).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np
import onnxruntime

from asr_service.audio.decode import SAMPLE_RATE
from asr_service.audio.levels import frame_power

WINDOW = 512
"""Samples per Silero decision at 16 kHz (32 ms)."""
CONTEXT = 64
"""Samples of the previous window Silero sees in front of each window."""
MIN_SILENCE_AT_MAX_SPEECH_MS = 98
"""Silero's default: pauses at least this long are candidate cut points when a span reaches the maximum length."""


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


class SileroModel:
    """The Silero VAD ONNX model shipped in the `silero-vad` wheel. Stateless: the LSTM state is an input and an
    output, so one session serves every stream and thread."""

    def __init__(self) -> None:
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1  # parallelism comes from several preprocessing threads, one core each
        model = resources.files("silero_vad") / "data" / "silero_vad.onnx"
        self._session = onnxruntime.InferenceSession(
            model.read_bytes(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)

    def step(self, windows: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One decision for each row of `windows` (rows, CONTEXT + WINDOW); returns probabilities and new state."""
        probability, state = self._session.run(None, {"input": windows, "state": state, "sr": self._rate})
        return probability[:, 0], state


class _SpanTracker:
    """Silero's `get_speech_timestamps_from_probs` (silero-vad 6.2, default `use_max_poss_sil_at_max_speech`) as a
    state machine fed block by block: raw spans (before padding) come out as soon as they are closed."""

    def __init__(self, params: VadParams) -> None:
        self.threshold = params.threshold
        self.negative_threshold = max(params.threshold - 0.15, 0.01)
        self.min_speech = SAMPLE_RATE * params.min_speech_ms / 1000
        self.pad = SAMPLE_RATE * params.speech_pad_ms / 1000
        self.max_speech = SAMPLE_RATE * params.max_segment_seconds - WINDOW - 2 * self.pad
        self.min_silence = SAMPLE_RATE * params.min_silence_ms / 1000
        self.min_silence_at_max_speech = SAMPLE_RATE * MIN_SILENCE_AT_MAX_SPEECH_MS / 1000
        self.triggered = False
        self.start: int | None = None
        self.temp_end = 0
        self.next_start = 0
        self.possible_ends: list[tuple[int, int]] = []

    def feed(self, probabilities: Sequence[float], first_window: int) -> list[tuple[int, int]]:
        closed: list[tuple[int, int]] = []
        for i, probability in enumerate(probabilities):
            sample = WINDOW * (first_window + i)
            if probability >= self.threshold and self.temp_end:
                silence = sample - self.temp_end
                if silence > self.min_silence_at_max_speech:
                    self.possible_ends.append((self.temp_end, silence))
                self.temp_end = 0
            if probability >= self.threshold and not self.triggered:
                self.triggered = True
                self.start = sample
                continue
            if self.triggered and self.start is not None and sample - self.start > self.max_speech:
                if self.possible_ends:  # cut at the longest pause inside the span
                    end, silence = max(self.possible_ends, key=lambda item: item[1])
                    closed.append((self.start, end))
                    self.start = None
                    self.next_start = end + silence
                    if self.next_start < end + sample:
                        self.start = self.next_start
                    else:
                        self.triggered = False
                    self.next_start = self.temp_end = 0
                    self.possible_ends = []
                else:  # no pause at all: cut here
                    closed.append((self.start, sample))
                    self.start = None
                    self.next_start = self.temp_end = 0
                    self.triggered = False
                    self.possible_ends = []
                    continue
            if probability < self.negative_threshold and self.triggered:
                if not self.temp_end:
                    self.temp_end = sample
                if sample - self.temp_end < self.min_silence:
                    continue
                if self.start is not None and self.temp_end - self.start > self.min_speech:
                    closed.append((self.start, self.temp_end))
                self.start = None
                self.next_start = self.temp_end = 0
                self.triggered = False
                self.possible_ends = []
        return closed

    def finish(self, length: int) -> list[tuple[int, int]]:
        if self.start is not None and length - self.start > self.min_speech:
            return [(self.start, length)]
        return []


class _Padder:
    """Silero's padding: each span grows by `pad` on both sides, or by half the pause when two spans are closer than
    two pads. A span's end depends on the next span's start, so it is released one span late."""

    def __init__(self, pad: float, length: int) -> None:
        self.pad = pad
        self.length = length
        self.held: list[int] | None = None  # [start (already padded), end (raw)]

    def push(self, raw: tuple[int, int]) -> list[SpeechSpan]:
        start, end = raw
        if self.held is None:
            self.held = [int(max(0, start - self.pad)), end]
            return []
        held_start, held_end = self.held
        silence = start - held_end
        if silence < 2 * self.pad:
            released = SpeechSpan(held_start, held_end + int(silence // 2))
            start = int(max(0, start - silence // 2))
        else:
            released = SpeechSpan(held_start, int(min(self.length, held_end + self.pad)))
            start = int(max(0, start - self.pad))
        self.held = [start, end]
        return [released]

    def finish(self) -> list[SpeechSpan]:
        if self.held is None:
            return []
        start, end = self.held
        self.held = None
        return [SpeechSpan(start, int(min(self.length, end + self.pad)))]


class _Merger:
    """Joins neighbours closer than `max_gap` while the result stays within `max_length`, then splits what is still
    longer; a merged span is released once the next one cannot join it."""

    def __init__(self, max_gap: int, max_length: int, length: int) -> None:
        self.max_gap = max_gap
        self.max_length = max_length
        self.length = length
        self.held: SpeechSpan | None = None

    def push(self, span: SpeechSpan) -> list[SpeechSpan]:
        span = SpeechSpan(span.start, min(span.end, self.length))
        held = self.held
        if held is not None and span.start - held.end <= self.max_gap and span.end - held.start <= self.max_length:
            self.held = SpeechSpan(held.start, max(held.end, span.end))
            return []
        self.held = span
        return split_span(held, self.max_length) if held is not None else []

    def finish(self) -> list[SpeechSpan]:
        held, self.held = self.held, None
        return split_span(held, self.max_length) if held is not None else []


class SpeechStream:
    """One signal being scanned: its samples, its gain for the VAD, Silero's LSTM state and the span pipeline.

    `scan(model, [stream, ...], windows)` advances several streams of equal length (a call's channels) in one
    batched model run per window; each returns the spans that became final.
    """

    def __init__(self, samples: np.ndarray, params: VadParams) -> None:
        self.samples = samples
        self.gain = np.float32(vad_gain(samples)) if samples.size else np.float32(1)
        self.windows = -(-samples.size // WINDOW) if samples.size >= WINDOW else 0
        self.position = 0
        self._tracker = _SpanTracker(params)
        self._padder = _Padder(self._tracker.pad, samples.size)
        self._merger = _Merger(
            int(params.merge_gap_seconds * SAMPLE_RATE), int(params.max_segment_seconds * SAMPLE_RATE), samples.size
        )
        self.state = np.zeros((2, 1, 128), dtype=np.float32)
        self.context = np.zeros(CONTEXT, dtype=np.float32)

    @property
    def finished(self) -> bool:
        return self.position >= self.windows

    def block_inputs(self, first: int, count: int) -> np.ndarray:
        """Silero's inputs for windows first..first+count: (count, CONTEXT + WINDOW), each window behind the last 64
        samples of the one before (zeros before the first), the gain applied, the last window zero-padded."""
        padded = np.zeros(CONTEXT + count * WINDOW, dtype=np.float32)
        padded[:CONTEXT] = self.context
        piece = self.samples[first * WINDOW : (first + count) * WINDOW]
        if self.gain != 1:
            np.multiply(piece, self.gain, out=padded[CONTEXT : CONTEXT + piece.size], dtype=np.float32)
        else:
            padded[CONTEXT : CONTEXT + piece.size] = piece
        windows = np.lib.stride_tricks.sliding_window_view(padded, CONTEXT + WINDOW)
        return windows[::WINDOW]

    def _release(self, raw: list[tuple[int, int]], last: bool) -> list[SpeechSpan]:
        padded = [span for item in raw for span in self._padder.push(item)]
        if last:
            padded += self._padder.finish()
        spans = [piece for span in padded for piece in self._merger.push(span)]
        if last:
            spans += self._merger.finish()
        return spans


def scan(model: SileroModel, streams: list[SpeechStream], max_windows: int) -> list[list[SpeechSpan]]:
    """Advance equally long streams by up to `max_windows` windows in one batched run; new final spans per stream.

    The block's model inputs (each window behind its 64 samples of context, gain applied, the last window zero-padded
    as Silero does) are laid out in one array first, so the per-window loop does nothing but run the model.
    """
    active = [s for s in streams if not s.finished]
    if not active:
        return [[] for _ in streams]
    first = active[0].position
    count = min(max_windows, active[0].windows - first)
    inputs = np.empty((count, len(active), CONTEXT + WINDOW), dtype=np.float32)
    for row, stream in enumerate(active):
        inputs[:, row] = stream.block_inputs(first, count)
    state = np.concatenate([s.state for s in active], axis=1)
    probabilities = np.empty((count, len(active)), dtype=np.float32)
    for i in range(count):
        probabilities[i], state = model.step(inputs[i], state)
    found: dict[int, list[SpeechSpan]] = {}
    for row, stream in enumerate(active):
        stream.state = np.ascontiguousarray(state[:, row : row + 1])
        stream.context = inputs[-1, row, -CONTEXT:].copy()
        stream.position = first + count
        raw = stream._tracker.feed(probabilities[:, row].tolist(), first)
        if stream.finished:
            raw += stream._tracker.finish(stream.samples.size)
        found[id(stream)] = stream._release(raw, stream.finished)
    return [found.get(id(s), []) for s in streams]


class SpeechDetector:
    """Whole-signal convenience over `scan`, for scripts and tests; the service scans block by block."""

    def __init__(self, params: VadParams, model: SileroModel | None = None) -> None:
        self.params = params
        self.model = model or SileroModel()

    def detect_speech(self, samples: np.ndarray) -> list[SpeechSpan]:
        stream = SpeechStream(samples, self.params)
        spans: list[SpeechSpan] = []
        while not stream.finished:
            spans += scan(self.model, [stream], 1 << 20)[0]
        return spans


LEVEL_FRAME_SECONDS = 0.1
LEVEL_REFERENCE_PERCENTILE = 99.5
"""The loudest 0.5 % of 100 ms frames: speech, if there is any, even in a long call that is mostly silence."""
LEVEL_TARGET_RMS = 0.1
"""-20 dBFS, ordinary speech level."""
LEVEL_MAX_GAIN = 100.0
"""At most +40 dB."""


def vad_gain(samples: np.ndarray) -> float:
    """One gain that brings the signal's loudest passages to ordinary speech level, for the VAD's ears only.

    Silero misses quiet speech (GLM-ASR's strength: callers far from the phone, low-gain lines). One gain for the
    whole signal keeps speech louder than the line noise between it; boosting each quiet stretch on its own would
    turn hiss into loud noise, after which Silero misses the next utterance. The model still hears the original,
    and the gain is applied window by window, so no levelled copy of a 4-hour call is ever made.
    """
    rms = np.sqrt(frame_power(samples, int(LEVEL_FRAME_SECONDS * SAMPLE_RATE)))
    reference = float(np.percentile(rms, LEVEL_REFERENCE_PERCENTILE))
    return min(LEVEL_MAX_GAIN, max(1.0, LEVEL_TARGET_RMS / reference)) if reference > 0 else 1.0


def merge_spans(spans: list[SpeechSpan], max_gap: int, max_length: int) -> list[SpeechSpan]:
    """Join neighbours separated by at most `max_gap` samples while the result stays within `max_length`, and split
    what is longer than `max_length` (the same steps the streams take, on a finished list)."""
    merger = _Merger(max_gap, max_length, max((s.end for s in spans), default=0))
    return [piece for span in spans for piece in merger.push(span)] + merger.finish()


def split_span(span: SpeechSpan, max_length: int) -> list[SpeechSpan]:
    """Cut a span longer than `max_length` into equal pieces (Silero already prefers cuts at pauses)."""
    length = span.end - span.start
    if length <= max_length:
        return [span]
    pieces = -(-length // max_length)
    bounds = np.linspace(span.start, span.end, pieces + 1).round().astype(int)
    return [SpeechSpan(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
