"""Voice-activity segmentation on real speech: spans within bounds, nothing cut, quiet speech found."""

from itertools import pairwise

import numpy as np
import pytest
from audio_factory import clip_samples

from asr_service.audio.decode import SAMPLE_RATE
from asr_service.audio.vad import SpeechDetector, SpeechSpan, VadParams, merge_spans, split_span
from asr_service.config import Settings
from asr_service.engines.glm_asr import GLM_ASR_PROFILE
from asr_service.engines.whisper_ct2 import WHISPER_PROFILE
from asr_service.transcription import vad_params


@pytest.fixture(scope="module")
def detector() -> SpeechDetector:
    return SpeechDetector(vad_params(Settings(), GLM_ASR_PROFILE))


def test_no_segment_exceeds_the_maximum_and_all_speech_is_kept(detector: SpeechDetector) -> None:
    long_speech = clip_samples("en_osr_us_000_0034_8k.wav")[0]  # 35 s of read sentences
    spans = detector.detect_speech(long_speech)
    assert len(spans) >= 3
    assert all(span.end - span.start <= 15 * SAMPLE_RATE for span in spans)
    assert all(a.end <= b.start for a, b in pairwise(spans))
    covered = sum(span.end - span.start for span in spans) / long_speech.size
    assert covered > 0.6


def test_quiet_speech_is_found(detector: SpeechDetector) -> None:
    quiet = clip_samples("zh_glmasr_example_zh.wav")[0]  # GLM-ASR's low-volume example, peak -38 dBFS
    assert np.abs(quiet).max() < 0.02
    spans = detector.detect_speech(quiet)
    assert sum(span.end - span.start for span in spans) > 3 * SAMPLE_RATE


def test_merge_joins_close_spans_within_the_limit() -> None:
    spans = [SpeechSpan(0, 100), SpeechSpan(150, 300), SpeechSpan(1000, 1200)]
    assert merge_spans(spans, max_gap=100, max_length=1000) == [SpeechSpan(0, 300), SpeechSpan(1000, 1200)]
    assert merge_spans(spans, max_gap=100, max_length=200) == spans


def test_split_cuts_overlong_spans_evenly() -> None:
    pieces = split_span(SpeechSpan(0, 1000), max_length=300)
    assert len(pieces) == 4 and pieces[0].start == 0 and pieces[-1].end == 1000
    assert all(b.start == a.end for a, b in pairwise(pieces))
    assert all(p.end - p.start <= 300 for p in pieces)


def test_vad_params_follow_settings_and_else_the_engine() -> None:
    params = vad_params(Settings(max_segment_seconds=12, vad_threshold=0.4), GLM_ASR_PROFILE)
    assert params == VadParams(0.4, 250, 300, 400, 12, 0.6)
    assert vad_params(Settings(), WHISPER_PROFILE) == VadParams(0.35, 250, 300, 400, 30, 2.0)
    assert vad_params(Settings(merge_gap_seconds=0), WHISPER_PROFILE).merge_gap_seconds == 0
