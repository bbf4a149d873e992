"""45-minute hotline calls built from real clips: nothing dropped, timestamps right, channels kept apart."""

import asyncio
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from audio_factory import Format, Placement, build_call, clip_samples, encode, hold_music, wav_bytes
from conftest import tiny_settings
from engines import SlowEngine, TimedEngine

from asr_service.engines.base import TokenBudget
from asr_service.engines.glm_asr import GlmAsrEngine
from asr_service.server import serve_in_thread

CALL_SECONDS = 45 * 60
MP3_8K = Format("mp3-8k", "mp3", "libmp3lame", 8_000, options=(("b", "32000"),))
MP3_8K_STEREO = Format("mp3-8k-stereo", "mp3", "libmp3lame", 8_000, channels=2, options=(("b", "32000"),))
AMR_8K = Format("amr-nb-8k", "amr", "libopencore_amrnb", 8_000, options=(("b", "12200"),))


def segment_with(segments: list[dict], word: str) -> dict:
    found = [s for s in segments if word in s["text"].lower()]
    assert found, f"{word!r} not transcribed: {[s['text'] for s in segments]}"
    return found[0]


def assert_timeline(body: dict) -> None:
    starts = [s["start"] for s in body["segments"]]
    assert starts == sorted(starts)
    assert all(0 <= s["start"] < s["end"] <= body["duration"] for s in body["segments"])
    assert abs(body["duration"] - CALL_SECONDS) < 1


@pytest.mark.slow
async def test_a_45_minute_mono_amr_call_keeps_every_utterance(whisper: httpx.AsyncClient) -> None:
    placements = [
        Placement(60, "en_jfk.flac"),
        Placement(700, "en_speechbrain_example1.wav"),
        Placement(1500, "zh_wenet_aishell-BAC009S0724W0121.wav"),
        Placement(2100, "en_glmasr_example_en.wav"),
        Placement(2650, "en_librispeech_1089-134686-0001.wav"),
    ]
    call = build_call(placements, CALL_SECONDS)
    call[0, 1000 * 16000 : 1060 * 16000] += hold_music(60)  # a minute on hold
    response = await whisper.post("/asr", files={"file": ("call.amr", encode(call, AMR_8K))})
    assert response.status_code == 200, response.text
    body = response.json()
    assert_timeline(body)
    for placement, word in zip(placements, ["country", "canoe", "广州", "fabric", "nightfall"], strict=True):
        segment = segment_with(body["segments"], word)
        assert placement.at - 1 <= segment["start"] <= placement.at + 12, (word, segment)
    assert not [s for s in body["segments"] if 1000 <= s["start"] < 1060], "hold music became words"


@pytest.mark.slow
async def test_a_45_minute_stereo_call_is_split_into_agent_and_caller(whisper: httpx.AsyncClient) -> None:
    placements = [
        Placement(120, "en_glmasr_example_en.wav", channel=0),
        Placement(700, "zh_wenet_aishell-BAC009S0724W0121.wav", channel=1),
        Placement(1300, "en_jfk.flac", channel=0),
        Placement(2000, "en_speechbrain_example1.wav", channel=1),
    ]
    call = build_call(placements, CALL_SECONDS, channels=2)
    response = await whisper.post("/asr", files={"file": ("call.mp3", encode(call, MP3_8K_STEREO))})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["channels"] == 2 and body["channel_mode"] == "split"
    assert_timeline(body)
    for placement, word in zip(placements, ["fabric", "房地产", "country", "canoe"], strict=True):
        segment = segment_with(body["segments"], word)
        assert segment["channel"] == placement.channel
        assert segment["speaker"] == ["agent", "caller"][placement.channel]
    lines = body["text"].splitlines()
    assert [line.split(":")[0] for line in lines] == ["agent", "caller", "agent", "caller"]
    assert "fabric" in lines[0] and "canoe" in lines[3]


async def test_a_short_call_is_not_stuck_behind_a_long_one(tiny_glmasr_dir: Path, model_cache: Path) -> None:
    engine = SlowEngine(GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, TokenBudget(16, 16)), seconds=0.2)
    settings = tiny_settings(tiny_glmasr_dir, model_cache, max_batch_size=2)
    long_call = build_call([Placement(8 * i + 1, "en_speechbrain_example1.wav") for i in range(40)], 330)
    short_call = wav_bytes(clip_samples("zh_firered_IT0011W0001.wav"))
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            long_request = asyncio.create_task(client.post("/asr", files={"file": ("long.wav", wav_bytes(long_call))}))
            while engine.batches < 2:
                await asyncio.sleep(0.05)
            batches_before = engine.batches
            short = await client.post("/asr", files={"file": ("short.wav", short_call)})
            batches_waited = engine.batches - batches_before
            assert short.status_code == 200
            assert not long_request.done(), "the long call should still be running"
            assert batches_waited <= 3, f"the short call waited {batches_waited} batches"
            long_body = (await long_request).json()
            assert len(long_body["segments"]) >= 38


def test_channel_copies_are_mixed_and_different_channels_split() -> None:
    from asr_service.audio.channels import channels_are_copies

    speech = clip_samples("en_speechbrain_example1.wav")[0]
    assert channels_are_copies(np.stack([speech, speech * 0.999]))
    assert not channels_are_copies(clip_samples("en_stereo_diarization.wav"))


async def test_a_long_calls_segmentation_holds_up_no_one(tiny_glmasr_dir: Path, model_cache: Path) -> None:
    """One preprocessing thread, a 20-minute stereo call: a short request sent while the call is being segmented is
    answered before that segmentation ends, and the call's first segments reach the model before it ends too."""
    engine = TimedEngine(GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, TokenBudget(16, 16)))
    settings = tiny_settings(tiny_glmasr_dir, model_cache, preprocess_workers=1)
    placements = [Placement(1 + 30 * i, "en_speechbrain_example1.wav", channel=i % 2) for i in range(40)]
    long_call = encode(build_call(placements, 20 * 60, channels=2), MP3_8K_STEREO)
    short_call = wav_bytes(clip_samples("zh_firered_IT0011W0001.wav"))
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=300) as client:
            sent = time.perf_counter()
            long_request = asyncio.create_task(client.post("/asr", files={"file": ("long.mp3", long_call)}))
            while not engine.calls:  # the call's first segment is being transcribed: segmentation is under way
                await asyncio.sleep(0.02)
            short = await client.post("/asr", files={"file": ("short.wav", short_call)})
            short_done = time.perf_counter()
            long_body = (await long_request).json()
    assert short.status_code == 200
    assert len(long_body["segments"]) == 40
    segmentation_ended = sent + (long_body["timing"]["decode_ms"] + long_body["timing"]["vad_ms"]) / 1000
    assert short_done < segmentation_ended, (short_done - sent, segmentation_ended - sent)
    assert engine.calls[0] < segmentation_ended
