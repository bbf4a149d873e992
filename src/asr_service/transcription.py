"""One request's journey: bytes -> samples -> speech segments -> queued chunks -> one transcript.

This is the only place that knows the order of the steps; it has no HTTP in it, so the CLI and every API route
(and later the batch jobs) share it.
"""

import asyncio
import logging
import time
import uuid

from asr_service.audio.decode import SAMPLE_RATE, decode_audio
from asr_service.audio.vad import SpeechDetector, SpeechSpan, VadParams
from asr_service.batching import Batcher, SegmentOutcome
from asr_service.config import Settings
from asr_service.engines.base import Chunk
from asr_service.errors import EmptyAudioError, RequestTimeoutError
from asr_service.language import ChineseScript, guess_language, join_texts
from asr_service.metrics import ServiceMetrics
from asr_service.schemas import Segment, Timing, TranscriptionOptions, TranscriptionResponse

logger = logging.getLogger(__name__)


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


class Transcriber:
    def __init__(
        self, settings: Settings, detector: SpeechDetector, batcher: Batcher, metrics: ServiceMetrics
    ) -> None:
        self._settings = settings
        self._detector = detector
        self._batcher = batcher
        self._metrics = metrics
        self._script = ChineseScript(settings.chinese_script)

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
        mono = audio.mono()
        spans = await asyncio.to_thread(self._detector.detect_speech, mono)
        vad_ms = _ms_since(vad_started)
        language = None if options.language == "auto" else options.language
        chunks = [Chunk(audio=mono[span.start : span.end], language=language) for span in spans]
        queued = time.perf_counter()
        outcomes = await self._await_all(request_id, chunks, client_gone) if chunks else []
        wait_ms = _ms_since(queued)
        inference_ms = round(sum({o.batch_id: o.batch_ms for o in outcomes}.values()), 1)
        segments = _segments(spans, outcomes, self._script)
        logger.info(
            "request %s: %.1f s audio, %d segments, %.0f ms", request_id, audio.duration, len(segments), _ms_since(started)
        )
        return TranscriptionResponse(
            id=request_id,
            text=join_texts([s.text for s in segments]),
            language=language or _dominant_language(spans, outcomes),
            duration=round(audio.duration, 3),
            confidence=_weighted_confidence(segments),
            segments=segments,
            model=self.model_name,
            timing=Timing(
                decode_ms=decode_ms,
                vad_ms=vad_ms,
                queue_ms=round(max(0.0, wait_ms - inference_ms), 1),
                inference_ms=inference_ms,
                total_ms=_ms_since(started),
            ),
        )

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


def _ms_since(mark: float) -> float:
    return round((time.perf_counter() - mark) * 1000, 1)


def _segments(spans: list[SpeechSpan], outcomes: list[SegmentOutcome], script: ChineseScript) -> list[Segment]:
    segments: list[Segment] = []
    for span, outcome in zip(spans, outcomes, strict=True):
        text = script.convert(outcome.result.text)
        if not text:
            continue  # speech-like noise the model heard no words in
        segments.append(
            Segment(
                id=len(segments),
                start=round(span.start / SAMPLE_RATE, 3),
                end=round(span.end / SAMPLE_RATE, 3),
                text=text,
                confidence=outcome.result.confidence,
            )
        )
    return segments


def _weighted_confidence(segments: list[Segment]) -> float | None:
    total = sum(s.end - s.start for s in segments)
    if not total:
        return None
    return round(sum(s.confidence * (s.end - s.start) for s in segments) / total, 4)


def _dominant_language(spans: list[SpeechSpan], outcomes: list[SegmentOutcome]) -> str | None:
    seconds: dict[str, float] = {}
    for span, outcome in zip(spans, outcomes, strict=True):
        lang = outcome.result.language or guess_language(outcome.result.text)
        if lang and outcome.result.text:
            seconds[lang] = seconds.get(lang, 0.0) + (span.end - span.start)
    return max(seconds, key=seconds.__getitem__) if seconds else None

