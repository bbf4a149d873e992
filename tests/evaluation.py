"""Accuracy of the service against the model run directly: shared by the accuracy tests and scripts/eval_accuracy.py.

"Model direct" is what a new user gets from faster-whisper's own defaults (`WhisperModel.transcribe(file,
language=…)`: beam 5, 30-second windows, temperature fallback, no VAD; see SAMPLED_RUNS) on exactly the bytes the
service receives.
The service is the in-process transcription pipeline (decode, channel decision, VAD, batching worker, guards).
"""

import hashlib
import io
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import jiwer
import numpy as np
import opencc
from audio_factory import Clip, Format, Placement, build_call, clip_samples, encode, manifest
from faster_whisper import WhisperModel

from asr_service.app import create_app
from asr_service.audio.decode import SAMPLE_RATE, DecodeLimits, decode_audio
from asr_service.config import Settings
from asr_service.schemas import TranscriptionOptions, TranscriptionResponse
from asr_service.transcription import Transcriber

_t2s = opencc.OpenCC("t2s")

NARROWBAND = Format("mp3-8k", "mp3", "libmp3lame", 8_000, options=(("b", "32000"),))
"""How hotline recorders store calls: 8 kHz, 32 kbit/s MP3."""
NARROWBAND_STEREO = Format("mp3-8k-stereo", "mp3", "libmp3lame", 8_000, channels=2, options=(("b", "32000"),))


def normalise(text: str, language: str) -> str:
    text = _t2s.convert(text).lower()
    text = re.sub(r"\[(left|right)\]", " ", text)
    text = re.sub(r"[^\w\s']", " ", text)
    return re.sub(r"\s+", "", text) if language in ("zh", "yue") else " ".join(text.split())


def error_rate(reference: str, hypothesis: str, language: str) -> float:
    """CER for Chinese and Cantonese, WER for English, after removing punctuation, case and script differences."""
    ref, hyp = normalise(reference, language), normalise(hypothesis, language)
    return jiwer.cer(ref, hyp) if language in ("zh", "yue") else jiwer.wer(ref, hyp)


def segment_text(result: TranscriptionResponse) -> str:
    """The words of a transcript in time order, without the speaker prefixes of split mode."""
    return " ".join(segment.text for segment in result.segments)


def whisper_language(language: str) -> str:
    return "zh" if language == "yue" else language  # whisper-base has no Cantonese token


@dataclass
class Scores:
    """Per-language mean error of the service and of the model run directly on the same items."""

    service: dict[str, list[float]] = field(default_factory=dict)
    direct: dict[str, list[float]] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)
    """One line per item: its name, both errors and both texts (for `eval_accuracy.py --verbose`)."""
    service_seconds: float = 0.0
    """Wall time the service spent on these items (the speed cost of a setting, compared in one run)."""

    def add(self, name: str, language: str, reference: str, service_text: str, direct_texts: list[str]) -> None:
        """`direct_texts`: one text, or several where the model sampled (its error is their mean)."""
        service = error_rate(reference, service_text, language)
        direct = float(np.mean([error_rate(reference, text, language) for text in direct_texts]))
        self.service.setdefault(language, []).append(service)
        self.direct.setdefault(language, []).append(direct)
        shown = direct_texts[0] + (f" (mean of {len(direct_texts)} sampled runs)" if len(direct_texts) > 1 else "")
        self.items.append(f"{name}: service {service:.2f} {service_text!r} | direct {direct:.2f} {shown!r}")

    def extend(self, other: "Scores") -> None:
        for language in other.service:
            self.service.setdefault(language, []).extend(other.service[language])
            self.direct.setdefault(language, []).extend(other.direct[language])
        self.items += other.items

    def means(self) -> dict[str, tuple[float, float]]:
        """language -> (service, direct) mean error; `all` is the mean over every item."""
        table = {lang: (float(np.mean(self.service[lang])), float(np.mean(self.direct[lang]))) for lang in self.service}
        every_service = [e for errors in self.service.values() for e in errors]
        every_direct = [e for errors in self.direct.values() for e in errors]
        table["all"] = (float(np.mean(every_service)), float(np.mean(every_direct)))
        return table


SAMPLED_RUNS = 5
"""faster-whisper's temperature fallback samples, and CTranslate2's sampling cannot be seeded: where the model fell
back for an item, its error is the mean over this many runs, so the baseline does not move from run to run."""

_direct_texts: dict[tuple[str, str | None], list[str]] = {}


def direct_texts(model: WhisperModel, audio: bytes | np.ndarray, language: str | None) -> list[str]:
    """faster-whisper's own transcribe() with its defaults, on a file's bytes or on 16 kHz samples: one text, or
    SAMPLED_RUNS texts where it sampled (remembered, so comparing several service settings runs it once per item)."""
    key = (hashlib.sha256(audio if isinstance(audio, bytes) else audio.tobytes()).hexdigest(), language)
    if key not in _direct_texts:
        text, sampled = _transcribe_directly(model, audio, language)
        texts = [text]
        if sampled:
            texts += [_transcribe_directly(model, audio, language)[0] for _ in range(SAMPLED_RUNS - 1)]
        _direct_texts[key] = texts
    return _direct_texts[key]


def _transcribe_directly(model: WhisperModel, audio: bytes | np.ndarray, language: str | None) -> tuple[str, bool]:
    source = io.BytesIO(audio) if isinstance(audio, bytes) else audio
    segments, _ = model.transcribe(source, language=whisper_language(language) if language else None)
    segments = list(segments)
    return " ".join(segment.text for segment in segments), any(segment.temperature > 0 for segment in segments)


@asynccontextmanager
async def in_process_transcriber(settings: Settings) -> AsyncIterator[Transcriber]:
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        yield state["transcriber"]


def narrowband(clip: Clip) -> bytes:
    return encode(clip_samples(clip.file), NARROWBAND_STEREO if clip.channels == 2 else NARROWBAND)


async def score_clips(
    transcriber: Transcriber, model: WhisperModel, clips: list[Clip], as_narrowband: bool = False
) -> Scores:
    scores = Scores()
    for clip in clips:
        data = narrowband(clip) if as_narrowband else clip.path.read_bytes()
        started = time.perf_counter()
        result = await transcriber.transcribe(data, TranscriptionOptions(language=clip.language))
        scores.service_seconds += time.perf_counter() - started
        scores.add(
            clip.file, clip.language, clip.reference, segment_text(result), direct_texts(model, data, clip.language)
        )
    return scores


def long_call_placements(clips: list[Clip], gap: float = 20.0) -> tuple[list[tuple[Placement, Clip]], float]:
    """Every mono clip once, alternating between the agent's and the caller's channel, `gap` seconds apart."""
    placed: list[tuple[Placement, Clip]] = []
    at = 2.0
    for i, clip in enumerate(c for c in clips if c.channels == 1):
        placed.append((Placement(at, clip.file, channel=i % 2), clip))
        at += clip.duration + gap
    return placed, at + gap


async def score_long_call(transcriber: Transcriber, model: WhisperModel, clips: list[Clip]) -> Scores:
    """A two-channel 8 kHz MP3 call built from the clips (with line hiss between them). Each clip's words are those
    of the segments on its channel that overlap its time, compared with the model run directly on that stretch of
    the same channel of the same decoded file alone (the clip with a second of the call on each side). The call
    mixes languages, so neither side is told the language."""
    placed, seconds = long_call_placements(clips)
    data = encode(build_call([p for p, _ in placed], seconds, channels=2), NARROWBAND_STEREO)
    started = time.perf_counter()
    result = await transcriber.transcribe(data, TranscriptionOptions(channels="split", language="auto"))
    service_seconds = time.perf_counter() - started
    call = decode_audio(data, DecodeLimits(max_seconds=seconds + 60)).samples
    scores = Scores(service_seconds=service_seconds)
    for placement, clip in placed:
        end = placement.at + clip.duration
        words = " ".join(
            s.text for s in result.segments if s.channel == placement.channel and s.start < end and s.end > placement.at
        )
        stretch = call[placement.channel, int((placement.at - 1) * SAMPLE_RATE) : int((end + 1) * SAMPLE_RATE)]
        scores.add(
            f"{clip.file}@{placement.at:.0f}s", clip.language, clip.reference, words, direct_texts(model, stretch, None)
        )
    return scores


def shared_clips() -> list[Clip]:
    return manifest()
