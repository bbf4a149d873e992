"""Wrappers around a real engine for what cannot be provoked on demand: a poisoned input, a GPU stall."""

import threading
import time

import numpy as np

from asr_service.engines.base import AsrEngine, Chunk, ChunkResult

POISON_PEAK = 0.999
"""Audio clipped at full scale is this wrapper's 'poisoned input'."""


class PoisonedEngine:
    """Fails any batch that contains a full-scale-clipped chunk, as a model can fail on one malformed input."""

    def __init__(self, inner: AsrEngine) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.profile = inner.profile
        self.batch_sizes: list[int] = []

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        self.batch_sizes.append(len(chunks))
        if any(float(np.abs(chunk.audio).max()) >= POISON_PEAK for chunk in chunks):
            raise ValueError("poisoned input")
        return self.inner.transcribe_batch(chunks)


class GatedEngine:
    """Holds every batch until the test opens the gate: a slow GPU, on demand."""

    def __init__(self, inner: AsrEngine) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.profile = inner.profile
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.seen: list[int] = []

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        self.entered.set()
        self.gate.wait(timeout=60)
        self.seen.extend(chunk.audio.size for chunk in chunks)
        return self.inner.transcribe_batch(chunks)


class TimedEngine:
    """Notes when each batch reaches the real engine."""

    def __init__(self, inner: AsrEngine) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.profile = inner.profile
        self.calls: list[float] = []

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        self.calls.append(time.perf_counter())
        return self.inner.transcribe_batch(chunks)


class OutOfMemoryEngine:
    """Runs out of GPU memory on any batch larger than `fits`, as a GPU does on long segments in a big batch."""

    def __init__(self, inner: AsrEngine, fits: int) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.profile = inner.profile
        self.fits = fits
        self.attempts: list[int] = []

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        self.attempts.append(len(chunks))
        if len(chunks) > self.fits:
            import torch

            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner.transcribe_batch(chunks)


class HangingEngine:
    """Its first call never returns until the test says so: a wedged GPU kernel or driver."""

    def __init__(self, inner: AsrEngine) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.profile = inner.profile
        self.release = threading.Event()
        self.hung = threading.Event()
        self.calls = 0

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        self.calls += 1
        if self.calls == 1:
            self.hung.set()
            self.release.wait(timeout=120)
        return self.inner.transcribe_batch(chunks)


class DictatingEngine:
    """Runs the real engine, then answers with the given texts in order: the shared recordings hold no phone
    numbers, and the redaction must be checked on the service's whole path (segments, text, every format)."""

    def __init__(self, inner: AsrEngine, texts: list[str]) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.profile = inner.profile
        self.texts = texts
        self.next = 0

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        results = self.inner.transcribe_batch(chunks)
        dictated = []
        for result in results:
            dictated.append(ChunkResult(self.texts[self.next % len(self.texts)], result.confidence, result.language))
            self.next += 1
        return dictated


class SlowEngine:
    """The real tiny GLM-ASR, made to take a fixed time per batch like a busy GPU; counts batches."""

    def __init__(self, inner: AsrEngine, seconds: float) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.profile = inner.profile
        self.seconds = seconds
        self.batches = 0

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        time.sleep(self.seconds)
        self.batches += 1
        return self.inner.transcribe_batch(chunks)
