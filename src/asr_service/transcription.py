"""One request's journey: bytes -> samples -> speech segments -> queued chunks -> one transcript.

This is the only place that knows the order of the steps; it has no HTTP in it, so the CLI and every API route
share it. Stereo calls are transcribed per channel (agent and caller) and merged into one timeline.
"""

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import numpy as np

from asr_service.audio.decode import SAMPLE_RATE, DecodedAudio, decode_audio
from asr_service.audio.vad import SpeechDetector, SpeechSpan, VadParams
from asr_service.batching import Batcher, SegmentOutcome
from asr_service.config import Settings
from asr_service.engines.base import Chunk
from asr_service.errors import EmptyAudioError, RequestTimeoutError
from asr_service.language import ChineseScript, guess_language, join_texts
from asr_service.metrics import ServiceMetrics
from asr_service.quality import remove_loops
from asr_service.schemas import ChannelMode, Segment, Timing, TranscriptionOptions, TranscriptionResponse

logger = logging.getLogger(__name__)

IDENTICAL_CHANNELS = 0.05
"""Relative energy of the channels' difference below which they are copies of one signal (a mono call in stereo)."""


class ClientDisconnected(Exception):
    """The client went away; its segments were withdrawn from the queue."""


def vad_params(settings: Settings) -> VadParams:
    return VadParams(
        threshold=settings.vad_threshold,
        min_speech_ms=settings.vad_min_speech_ms,
        min_silence_ms=settings.vad_min_silence_ms,
        speech_pad_ms=settings.vad_speech_pad_ms,
        max_segment_seconds=settings.max_segment_seconds,
        merge_gap_seconds=settings.merge_gap_seconds,
    )


@dataclass(frozen=True)
class _Stream:
    """One signal to segment: a channel in split mode, the downmix otherwise."""

    channel: int | None
    samples: np.ndarray


@dataclass(frozen=True)
class _Piece:
    channel: int | None
    span: SpeechSpan


def channels_are_copies(samples: np.ndarray, block: int = 1 << 20) -> bool:
    """True when every channel carries the same signal as the first (so splitting would transcribe it twice).

    Block by block, so a 4-hour stereo call needs megabytes, not gigabytes, of temporaries.
    """
    first = samples[0]
    for other in samples[1:]:
        difference = energy = 0.0
        for start in range(0, first.size, block):
            a, b = first[start : start + block], other[start : start + block]
            d = b - a
            difference += float(np.dot(d, d))
            energy += float(np.dot(a, a)) + float(np.dot(b, b))
        if energy and difference / energy > IDENTICAL_CHANNELS:
            return False
    return True


def resolve_channel_mode(audio: DecodedAudio, requested: ChannelMode) -> Literal["mix", "split"]:
    if audio.channel_count == 1 or requested == "mix":
        return "mix"
    if requested == "split":
        return "split"
    return "mix" if channels_are_copies(audio.samples) else "split"


class Transcriber:
    def __init__(self, settings: Settings, detector: SpeechDetector, batcher: Batcher, metrics: ServiceMetrics) -> None:
        self._settings = settings
        self._detector = detector
        self._batcher = batcher
        self._metrics = metrics
        self._script = ChineseScript(settings.chinese_script)
        self._roles = settings.roles
        self._server_hotwords = settings.server_hotwords()

    @property
    def model_name(self) -> str:
        return self._batcher.engine.model_name

    async def transcribe(
        self,
        data: bytes,
        options: TranscriptionOptions,
        client_gone: asyncio.Future[None] | None = None,
    ) -> TranscriptionResponse:
        request_id = uuid.uuid4().hex
        started = time.perf_counter()
        audio = await asyncio.to_thread(decode_audio, data, self._settings.max_audio_seconds)
        decode_ms = _ms_since(started)
        if audio.duration < self._settings.min_audio_seconds:
            raise EmptyAudioError(
                f"the audio is {audio.duration * 1000:.0f} ms long; at least "
                f"{self._settings.min_audio_seconds * 1000:.0f} ms are needed"
            )
        self._metrics.audio_seconds.inc(audio.duration)
        vad_started = time.perf_counter()
        language = None if options.language == "auto" else options.language
        mode, pieces, chunks = await asyncio.to_thread(self._segment, audio, options, language)
        vad_ms = _ms_since(vad_started)
        queued = time.perf_counter()
        outcomes = await self._await_all(request_id, chunks, client_gone) if chunks else []
        wait_ms = _ms_since(queued)
        inference_ms = round(sum({o.batch_id: o.batch_ms for o in outcomes}.values()), 1)
        segments = self._segments(pieces, outcomes)
        logger.info(
            "request %s: %.1f s audio, %d channel(s) %s, %d segments, %.0f ms",
            request_id,
            audio.duration,
            audio.channel_count,
            mode,
            len(segments),
            _ms_since(started),
        )
        return TranscriptionResponse(
            id=request_id,
            text=_transcript_text(segments, mode),
            language=language or _dominant_language(segments),
            duration=round(audio.duration, 3),
            confidence=_weighted_confidence(segments),
            segments=segments,
            channels=audio.channel_count,
            channel_mode=mode,
            needs_review=any(s.needs_review for s in segments),
            model=self.model_name,
            timing=Timing(
                decode_ms=decode_ms,
                vad_ms=vad_ms,
                queue_ms=round(max(0.0, wait_ms - inference_ms), 1),
                inference_ms=inference_ms,
                total_ms=_ms_since(started),
            ),
        )

    def _segment(
        self, audio: DecodedAudio, options: TranscriptionOptions, language: str | None
    ) -> tuple[Literal["mix", "split"], list[_Piece], list[Chunk]]:
        """Choose mix or split, find speech in each stream, and cut chunks (views, not copies). Runs in a thread:
        on a 4-hour stereo call the downmix alone would block the event loop for half a second."""
        mode = resolve_channel_mode(audio, options.channels)
        streams = (
            [_Stream(c, audio.samples[c]) for c in range(audio.channel_count)]
            if mode == "split"
            else [_Stream(None, audio.mono())]
        )
        hotwords = tuple(dict.fromkeys([*self._server_hotwords, *options.hotwords]))
        pieces: list[_Piece] = []
        chunks: list[Chunk] = []
        for stream in streams:
            for span in self._detector.detect_speech(stream.samples):
                pieces.append(_Piece(stream.channel, span))
                chunks.append(Chunk(stream.samples[span.start : span.end], language, hotwords))
        return mode, pieces, chunks

    async def _await_all(
        self, request_id: str, chunks: list[Chunk], client_gone: asyncio.Future[None] | None
    ) -> list[SegmentOutcome]:
        futures = self._batcher.submit(request_id, chunks)
        everything = asyncio.gather(*futures)
        waiters: set[asyncio.Future[object]] = {everything}
        if client_gone is not None:
            waiters.add(client_gone)
        try:
            await asyncio.wait(waiters, timeout=self._settings.request_timeout_seconds, return_when="FIRST_COMPLETED")
        finally:
            if not everything.done():
                everything.cancel()  # cancels the pending futures: the worker skips them
        if everything.cancelled() or not everything.done():
            if client_gone is not None and client_gone.done():
                raise ClientDisconnected(request_id)
            raise RequestTimeoutError(
                f"transcription did not finish within {self._settings.request_timeout_seconds:.0f} s"
            )
        return everything.result()

    def _segments(self, pieces: list[_Piece], outcomes: list[SegmentOutcome]) -> list[Segment]:
        """One timeline across channels, ordered by start time; empty results (noise) are dropped."""
        segments: list[Segment] = []
        ordered = sorted(zip(pieces, outcomes, strict=True), key=lambda p: (p[0].span.start, p[0].channel or 0))
        for piece, outcome in ordered:
            check = remove_loops(self._script.convert(outcome.result.text))
            if not check.text:
                continue
            confidence = outcome.result.confidence
            segments.append(
                Segment(
                    id=len(segments),
                    start=round(piece.span.start / SAMPLE_RATE, 3),
                    end=round(piece.span.end / SAMPLE_RATE, 3),
                    text=check.text,
                    confidence=confidence,
                    language=guess_language(check.text) or outcome.result.language,
                    channel=piece.channel,
                    speaker=self._role(piece.channel),
                    needs_review=check.loop_removed or confidence < self._settings.review_threshold,
                    loop_removed=check.loop_removed,
                )
            )
        return segments

    def _role(self, channel: int | None) -> str | None:
        if channel is None:
            return None
        return self._roles[channel] if channel < len(self._roles) else f"channel{channel}"


def _ms_since(mark: float) -> float:
    return round((time.perf_counter() - mark) * 1000, 1)


def _transcript_text(segments: list[Segment], mode: Literal["mix", "split"]) -> str:
    """Mixed: one running text. Split: one line per turn, prefixed with the speaker's role."""
    if mode == "mix":
        return join_texts([s.text for s in segments])
    turns: list[tuple[str | None, list[str]]] = []
    for segment in segments:
        if turns and turns[-1][0] == segment.speaker:
            turns[-1][1].append(segment.text)
        else:
            turns.append((segment.speaker, [segment.text]))
    return "\n".join(f"{speaker}: {join_texts(texts)}" for speaker, texts in turns)


def _weighted_confidence(segments: list[Segment]) -> float | None:
    total = sum(s.end - s.start for s in segments)
    if not total:
        return None
    return round(sum(s.confidence * (s.end - s.start) for s in segments) / total, 4)


def _dominant_language(segments: list[Segment]) -> str | None:
    seconds: dict[str, float] = {}
    for segment in segments:
        if segment.language:
            seconds[segment.language] = seconds.get(segment.language, 0.0) + (segment.end - segment.start)
    return max(seconds, key=seconds.__getitem__) if seconds else None
