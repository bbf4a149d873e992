"""Voice-activity segmentation on real speech: spans within bounds, nothing cut, quiet speech found."""

from itertools import pairwise

import numpy as np
import pytest
import silero_vad
import torch
from audio_factory import Placement, build_call, clip_samples, manifest

from asr_service.audio.decode import SAMPLE_RATE
from asr_service.audio.vad import (
    SileroModel,
    SpeechDetector,
    SpeechSpan,
    SpeechStream,
    VadParams,
    merge_spans,
    scan,
    split_span,
    vad_gain,
)
from asr_service.config import Settings
from asr_service.engines.base import EngineProfile
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
    assert vad_params(Settings(), WHISPER_PROFILE) == VadParams(0.35, 250, 300, 800, 30, 0.0)
    assert vad_params(Settings(merge_gap_seconds=2), WHISPER_PROFILE).merge_gap_seconds == 2


def silero_reference(samples: np.ndarray, params: VadParams) -> list[SpeechSpan]:
    """What the service did before: Silero's own whole-signal scan of a levelled copy, then merge and split."""
    if samples.size < 512:
        return []
    gain = vad_gain(samples)
    levelled = samples if gain == 1 else np.multiply(samples, np.float32(gain), dtype=np.float32)
    raw = silero_vad.get_speech_timestamps(
        torch.from_numpy(levelled),
        silero_vad.load_silero_vad(onnx=True),
        threshold=params.threshold,
        sampling_rate=SAMPLE_RATE,
        min_speech_duration_ms=params.min_speech_ms,
        min_silence_duration_ms=params.min_silence_ms,
        speech_pad_ms=params.speech_pad_ms,
        max_speech_duration_s=params.max_segment_seconds,
    )
    spans = [SpeechSpan(int(s["start"]), min(int(s["end"]), samples.size)) for s in raw]
    max_length = int(params.max_segment_seconds * SAMPLE_RATE)
    return merge_spans(spans, int(params.merge_gap_seconds * SAMPLE_RATE), max_length)


@pytest.mark.parametrize("profile", [WHISPER_PROFILE, GLM_ASR_PROFILE], ids=["whisper", "glm-asr"])
def test_block_wise_scan_equals_silero_whole_signal_scan(profile: EngineProfile) -> None:
    params = vad_params(Settings(), profile)
    model = SileroModel()
    long_call = build_call([Placement(1 + 17 * i, clip.file) for i, clip in enumerate(manifest() * 2)], 17 * 28 + 20)
    signals = [clip_samples(clip.file).mean(axis=0) for clip in manifest()]
    for samples in [*signals, long_call[0], np.zeros(100, np.float32), np.zeros(600, np.float32)]:
        stream = SpeechStream(samples, params)
        spans: list[SpeechSpan] = []
        while not stream.finished:
            spans += scan(model, [stream], 97)[0]  # ~3 s blocks: many block boundaries inside speech
        assert spans == silero_reference(samples, params)


def test_channels_scanned_together_equal_each_scanned_alone() -> None:
    params = vad_params(Settings(), WHISPER_PROFILE)
    model = SileroModel()
    stereo = clip_samples("en_stereo_diarization.wav")
    streams = [SpeechStream(stereo[0], params), SpeechStream(stereo[1], params)]
    together: list[list[SpeechSpan]] = [[], []]
    while not all(s.finished for s in streams):
        for spans, found in zip(together, scan(model, streams, 50), strict=True):
            spans += found
    assert together == [SpeechDetector(params, model).detect_speech(stereo[c]) for c in (0, 1)]
    assert together[0] and together[1]
