"""The engine contract: a list of audio chunks in, a list of the same length out.

The batching worker only knows this Protocol, so GLM-ASR, the embedded Whisper and test engines are interchangeable.
"""

import math
import sys
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from asr_service.audio import SAMPLE_RATE


@dataclass(frozen=True)
class Chunk:
    """One speech segment to transcribe."""

    audio: np.ndarray
    """float32 mono samples at 16 kHz."""
    language: str | None = None
    """`zh`, `yue`, `en`, or None to let the model decide."""
    hotwords: tuple[str, ...] = ()
    """Names and terms likely in this call (street names, agencies), given to the model as context."""
    prepared: object | None = field(default=None, repr=False, compare=False)
    """The engine's own inputs for this chunk, computed ahead by `PreparesInputs.prepare` on a preprocessing
    thread; only the engine that made them reads them."""

    @property
    def duration(self) -> float:
        return self.audio.shape[0] / SAMPLE_RATE


@dataclass(frozen=True)
class ChunkResult:
    text: str
    confidence: float
    """Mean probability of the emitted tokens, 0..1."""
    language: str | None = None
    """Language the engine recognised, when it knows (Whisper does; GLM-ASR has no language token)."""


@dataclass(frozen=True)
class EngineProfile:
    """What suits an engine where a setting is left unset (`None`): segment length, merging and batch size differ
    between models, and a setting that helps one (GLM-ASR's 15-second segments) hurts another (Whisper's native
    window is 30 seconds)."""

    max_segment_seconds: float
    """Longest segment given to the model."""
    merge_gap_seconds: float
    """Speech spans closer than this are joined into one segment (within the maximum), so the model hears context."""
    speech_pad_ms: int
    """Audio kept on each side of the speech the VAD found, so onsets are not clipped and the model hears context."""
    max_batch_size: int
    """Most segments per model call that is fastest on this engine and device."""


@dataclass(frozen=True)
class TokenBudget:
    """How many tokens a segment may produce: enough for fast speech, never a fixed cap that cuts long speech."""

    tokens_per_second: float
    min_tokens: int

    def for_duration(self, seconds: float) -> int:
        return max(self.min_tokens, math.ceil(seconds * self.tokens_per_second))


class AsrEngine(Protocol):
    model_name: str
    """What responses, logs and /readyz report as the model in use."""
    profile: EngineProfile
    """Segmentation and batching that suit this engine on its device."""

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        """Transcribe all chunks in one padded batch; return one result per chunk, in order."""
        ...


@runtime_checkable
class PreparesInputs(Protocol):
    """An engine whose per-segment input work (features, prompt tokens) can be done before the segment's batch is
    formed, on the preprocessing threads, so the one worker that feeds the model only stacks it."""

    def prepare(self, chunks: list[Chunk]) -> list[Chunk]:
        """The same chunks with `prepared` set where this engine can; never raises (an unprepared chunk is
        prepared in its batch instead). Called from any thread."""
        ...


def is_out_of_memory(error: BaseException) -> bool:
    """True for the GPU running out of memory: torch's own error, or CTranslate2's CUDA message. Checked without
    importing torch, which a CPU deployment of the embedded model never loads."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
