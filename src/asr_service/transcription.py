"""One request's journey: bytes -> samples -> speech segments -> queued chunks -> one transcript.

This is the only place that knows the order of the steps; it has no HTTP in it, so the CLI and every API route
share it. Stereo calls are transcribed per channel (agent and caller) and merged into one timeline.
"""

import asyncio
import datetime
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar

from asr_service.audio.channels import decide_channels
from asr_service.audio.decode import SAMPLE_RATE, DecodedAudio, DecodeLimits, decode_audio
from asr_service.audio.vad import SileroModel, SpeechSpan, SpeechStream, VadParams, scan
from asr_service.batching import Batcher, SegmentOutcome
from asr_service.batching.fair_queue import Priority
from asr_service.config import Settings
from asr_service.engines.base import Chunk, EngineProfile, PreparesInputs
from asr_service.errors import EmptyAudioError, RequestTimeoutError
from asr_service.language import ChineseScript, guess_language
from asr_service.metrics import ServiceMetrics
from asr_service.quality import remove_loops
from asr_service.redaction import redact_texts
from asr_service.schemas import Segment, Timing, TranscriptionOptions, TranscriptionResponse
from asr_service.text import tidy_text, transcript_text

logger = logging.getLogger(__name__)

SCAN_BLOCK_WINDOWS = 938
"""About 30 s of audio (32 ms windows) per turn on a preprocessing thread: a long call gives its thread back this
often, so a short request waits at most one block (~0.2 s) for segmentation, and its segments reach the model as
soon as they are found."""

P = ParamSpec("P")
R = TypeVar("R")


class ClientDisconnected(Exception):
    """The client went away; its segments were withdrawn from the queue."""


def decode_limits(settings: Settings) -> DecodeLimits:
    return DecodeLimits(
        max_seconds=settings.max_audio_seconds,
        max_channels=settings.max_channels,
        max_channel_seconds=settings.max_channel_seconds,
        max_decode_seconds=settings.max_decode_seconds,
    )


def vad_params(settings: Settings, profile: EngineProfile) -> VadParams:
    """Silero's parameters from the settings; segment length and merging from the engine where left unset."""
    return VadParams(
        threshold=settings.vad_threshold,
        min_speech_ms=settings.vad_min_speech_ms,
        min_silence_ms=settings.vad_min_silence_ms,
        speech_pad_ms=profile.speech_pad_ms if settings.vad_speech_pad_ms is None else settings.vad_speech_pad_ms,
        max_segment_seconds=settings.max_segment_seconds or profile.max_segment_seconds,
        merge_gap_seconds=(
            profile.merge_gap_seconds if settings.merge_gap_seconds is None else settings.merge_gap_seconds
        ),
    )


@dataclass(frozen=True)
class _Channel:
    """One signal to segment: a channel in split mode (`channel` set), the downmix otherwise."""

    channel: int | None
    stream: SpeechStream


@dataclass(frozen=True)
class _Piece:
    channel: int | None
    span: SpeechSpan


if TYPE_CHECKING:
    from asr_service.jobs.tickets import TicketBook


class Transcriber:
    def __init__(
        self,
        settings: Settings,
        params: VadParams,
        vad: SileroModel,
        preprocessing: Executor,
        batcher: Batcher,
        metrics: ServiceMetrics,
    ) -> None:
        self._settings = settings
        self._params = params
        self._limits = decode_limits(settings)
        self._vad = vad
        self._preprocessing = preprocessing
        self._batcher = batcher
        self._metrics = metrics
        self._script = ChineseScript(settings.chinese_script)
        self.tickets: TicketBook | None = None
        """Set once the database is open (the lifespan): where `analyze=true` files its tickets."""
        self._roles = settings.roles
        self._server_hotwords = settings.server_hotwords()

    @property
    def model_name(self) -> str:
        return self._batcher.engine.model_name

    async def _preprocess(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run CPU work (decoding, channel analysis, a VAD block) on the bounded preprocessing pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._preprocessing, functools.partial(function, *args, **kwargs))

    async def transcribe(
        self,
        data: bytes,
        options: TranscriptionOptions,
        client_gone: asyncio.Future[None] | None = None,
        priority: Priority = "interactive",
        progress: Callable[[float], None] | None = None,
        call_id: str | None = None,
        call_time: datetime.datetime | None = None,
    ) -> TranscriptionResponse:
        """`priority`: `batch` for jobs, which queue behind interactive requests. `progress` is told the fraction
        done (audio scanned × segments transcribed) as blocks are scanned and segments come back. With
        `options.analyze`, the call is filed as a ticket under `call_id` (default: the request id) at
        `options.call_time`, else `call_time`, else now."""
        with self._batcher.admitted(priority) as request_id:  # before any work: a busy or draining service refuses
            result = await self._transcribe(request_id, data, options, client_gone, _Progress(progress))
        if options.analyze and self.tickets is not None:
            ticket = await asyncio.to_thread(
                self.tickets.file, result.text, call_id or result.id, options.call_time or call_time
            )
            result = result.model_copy(update={"ticket": ticket})
        return result

    async def _transcribe(
        self,
        request_id: str,
        data: bytes,
        options: TranscriptionOptions,
        client_gone: asyncio.Future[None] | None,
        tracker: "_Progress",
    ) -> TranscriptionResponse:
        started = time.perf_counter()
        deadline = started + self._settings.request_timeout_seconds
        audio = await self._preprocess(decode_audio, data, self._limits)
        decode_ms = _ms_since(started)
        if audio.duration < self._settings.min_audio_seconds:
            raise EmptyAudioError(
                f"the audio is {audio.duration * 1000:.0f} ms long; at least "
                f"{self._settings.min_audio_seconds * 1000:.0f} ms are needed"
            )
        self._metrics.audio_seconds.inc(audio.duration)
        language = None if options.language == "auto" else options.language
        hotwords = tuple(dict.fromkeys([*self._server_hotwords, *options.hotwords]))
        vad_started = time.perf_counter()
        mode, channels = await self._preprocess(self._open_channels, audio, options)
        pieces: list[_Piece] = []
        futures: list[asyncio.Future[SegmentOutcome]] = []
        try:
            while not all(c.stream.finished for c in channels):
                _check_still_wanted(client_gone, deadline, self._settings.request_timeout_seconds)
                found, chunks = await self._preprocess(self._next_block, channels, language, hotwords)
                pieces += found
                if chunks:
                    submitted = self._batcher.submit(request_id, chunks)
                    tracker.submitted(submitted, chunks)
                    futures += submitted
                tracker.scanned(
                    sum(c.stream.position for c in channels) / max(1, sum(c.stream.windows for c in channels))
                )
            vad_ms = _ms_since(vad_started)
            outcomes = await self._await_all(futures, client_gone, deadline) if futures else []
        except BaseException:
            for future in futures:
                future.cancel()  # the worker skips cancelled segments
            raise
        inference_ms = round(sum({o.batch_id: o.batch_ms for o in outcomes}.values()), 1)
        segments = self._segments(pieces, outcomes)
        redactions = None
        if self._settings.redact if options.redact is None else options.redact:
            masked, redactions = redact_texts([s.text for s in segments])
            segments = [s.model_copy(update={"text": text}) for s, text in zip(segments, masked, strict=True)]
        total_ms = _ms_since(started)
        logger.info(
            "request %s: %.1f s audio, %d channel(s) %s, %d segments, %.0f ms",
            request_id,
            audio.duration,
            audio.channel_count,
            mode,
            len(segments),
            total_ms,
        )
        return TranscriptionResponse(
            id=request_id,
            text=transcript_text(segments, mode),
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
                queue_ms=round(max(0.0, total_ms - decode_ms - vad_ms - inference_ms), 1),
                inference_ms=inference_ms,
                total_ms=total_ms,
            ),
            redactions=redactions,
        )

    def _next_block(
        self, channels: list[_Channel], language: str | None, hotwords: tuple[str, ...]
    ) -> tuple[list[_Piece], list[Chunk]]:
        """Scan the next block of every channel for speech; each span that became final is a chunk, with its model
        inputs prepared here when the engine can, on this preprocessing thread rather than in the model's worker."""
        pieces: list[_Piece] = []
        chunks: list[Chunk] = []
        found = scan(self._vad, [c.stream for c in channels], SCAN_BLOCK_WINDOWS)
        for channel, spans in zip(channels, found, strict=True):
            for span in spans:
                pieces.append(_Piece(channel.channel, span))
                chunks.append(Chunk(channel.stream.samples[span.start : span.end], language, hotwords))
        engine = self._batcher.engine
        if chunks and isinstance(engine, PreparesInputs):
            chunks = engine.prepare(chunks)
        return pieces, chunks

    def _open_channels(
        self, audio: DecodedAudio, options: TranscriptionOptions
    ) -> tuple[Literal["mix", "split"], list[_Channel]]:
        """Choose mix or split and set up one speech stream per signal (the downmix alone would block the event loop
        for half a second on a 4-hour stereo call, hence a preprocessing thread)."""
        mode = decide_channels(audio, options.channels)
        if mode == "split":
            return mode, [_Channel(c, SpeechStream(audio.samples[c], self._params)) for c in range(audio.channel_count)]
        return mode, [_Channel(None, SpeechStream(audio.mono(), self._params))]

    async def _await_all(
        self,
        futures: list[asyncio.Future[SegmentOutcome]],
        client_gone: asyncio.Future[None] | None,
        deadline: float,
    ) -> list[SegmentOutcome]:
        everything = asyncio.gather(*futures)
        everything.add_done_callback(_retrieve_exception)  # read even when nobody waits any more (a hang-up)
        waiters: set[asyncio.Future[object]] = {everything}
        if client_gone is not None:
            waiters.add(client_gone)
        try:
            await asyncio.wait(waiters, timeout=max(0.0, deadline - time.perf_counter()), return_when="FIRST_COMPLETED")
        finally:
            if not everything.done():
                everything.cancel()  # cancels the pending futures: the worker skips them
        if everything.cancelled() or not everything.done():
            _check_still_wanted(client_gone, float("inf"), self._settings.request_timeout_seconds)
            raise _timeout(self._settings.request_timeout_seconds)
        return everything.result()

    def _segments(self, pieces: list[_Piece], outcomes: list[SegmentOutcome]) -> list[Segment]:
        """One timeline across channels, ordered by start time; empty results (noise) are dropped."""
        segments: list[Segment] = []
        ordered = sorted(zip(pieces, outcomes, strict=True), key=lambda p: (p[0].span.start, p[0].channel or 0))
        for piece, outcome in ordered:
            check = remove_loops(tidy_text(self._script.convert(outcome.result.text)))
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


class _Progress:
    """Fraction of a request done: audio scanned for speech × speech transcribed."""

    def __init__(self, report: Callable[[float], None] | None) -> None:
        self._report = report
        self._scanned = 0.0
        self._submitted = 0.0
        self._done = 0.0

    def scanned(self, fraction: float) -> None:
        self._scanned = min(1.0, fraction)
        self._tell()

    def submitted(self, futures: list[asyncio.Future[SegmentOutcome]], chunks: list[Chunk]) -> None:
        if self._report is None:
            return
        for future, chunk in zip(futures, chunks, strict=True):
            self._submitted += chunk.duration
            future.add_done_callback(functools.partial(self._segment_done, chunk.duration))

    def _segment_done(self, seconds: float, _: asyncio.Future[SegmentOutcome]) -> None:
        self._done += seconds
        self._tell()

    def _tell(self) -> None:
        if self._report is not None:
            self._report(self._scanned * (self._done / self._submitted if self._submitted else 1.0))


def _retrieve_exception(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


def _check_still_wanted(client_gone: asyncio.Future[None] | None, deadline: float, timeout: float) -> None:
    if client_gone is not None and client_gone.done():
        raise ClientDisconnected()
    if time.perf_counter() > deadline:
        raise _timeout(timeout)


def _timeout(seconds: float) -> RequestTimeoutError:
    return RequestTimeoutError(f"transcription did not finish within {seconds:.0f} s")


def _ms_since(mark: float) -> float:
    return round((time.perf_counter() - mark) * 1000, 1)


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
