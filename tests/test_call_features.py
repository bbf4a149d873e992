"""Stereo calls, output formats, quality guards and hotwords, through the real service."""

import base64
import re
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from audio_factory import AUDIO_DIR, Placement, build_call, clip_samples, wav_bytes
from conftest import tiny_settings
from evaluation import error_rate

from asr_service.engines.base import Chunk, ChunkResult, TokenBudget
from asr_service.engines.glm_asr import GlmAsrEngine
from asr_service.language import guess_language
from asr_service.quality import remove_loops
from asr_service.server import serve_in_thread

STEREO = (AUDIO_DIR / "en_stereo_diarization.wav").read_bytes()


async def test_stereo_clip_is_split_by_default(whisper: httpx.AsyncClient) -> None:
    body = (await whisper.post("/asr", files={"file": ("s.wav", STEREO)})).json()
    assert body["channel_mode"] == "split" and body["channels"] == 2
    wizard = [s for s in body["segments"] if "wizard" in s["text"].lower()]
    horizon = [s for s in body["segments"] if "horizon" in s["text"].lower()]
    assert wizard and wizard[0]["channel"] == 0 and wizard[0]["speaker"] == "agent"
    assert horizon and horizon[0]["channel"] == 1 and horizon[0]["speaker"] == "caller"
    assert all(line.startswith(("agent: ", "caller: ")) for line in body["text"].splitlines())


async def test_mix_is_one_stream_and_copies_are_mixed_automatically(whisper: httpx.AsyncClient) -> None:
    mixed = (await whisper.post("/asr", files={"file": ("s.wav", STEREO)}, data={"channels": "mix"})).json()
    assert mixed["channel_mode"] == "mix" and all(s["channel"] is None for s in mixed["segments"])
    speech = clip_samples("en_speechbrain_example1.wav")
    copies = wav_bytes(np.concatenate([speech, speech]))
    auto = (await whisper.post("/asr", files={"file": ("c.wav", copies)})).json()
    assert auto["channel_mode"] == "mix" and auto["channels"] == 2
    assert "canoe" in auto["text"].lower() and auto["text"].lower().count("canoe") == 1


async def test_roles_come_from_settings(tiny_glmasr_dir: Path, model_cache: Path) -> None:
    settings = tiny_settings(tiny_glmasr_dir, model_cache, channel_roles="坐席,市民")
    with serve_in_thread(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            body = (await client.post("/asr", files={"file": ("s.wav", STEREO)}, data={"channels": "split"})).json()
    assert {s["speaker"] for s in body["segments"]} == {"坐席", "市民"}


@pytest.mark.parametrize("how", ["form", "query"])
async def test_subtitles_carry_speaker_roles(whisper: httpx.AsyncClient, how: str) -> None:
    if how == "form":
        srt = await whisper.post("/asr", files={"file": ("s.wav", STEREO)}, data={"response_format": "srt"})
    else:
        srt = await whisper.post("/asr?response_format=srt", files={"file": ("s.wav", STEREO)})
    assert srt.status_code == 200 and srt.headers["content-type"].startswith("application/x-subrip")
    cues = srt.text.strip().split("\n\n")
    assert re.fullmatch(r"1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n(agent|caller): .+", cues[0])
    vtt = await whisper.post("/asr", files={"file": ("s.wav", STEREO)}, data={"response_format": "vtt"})
    assert vtt.headers["content-type"].startswith("text/vtt") and vtt.text.startswith("WEBVTT\n")
    assert re.search(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n<v (agent|caller)>", vtt.text)
    text = await whisper.post("/asr", files={"file": ("s.wav", STEREO)}, data={"response_format": "text"})
    assert text.headers["content-type"].startswith("text/plain") and text.text.startswith(("agent: ", "caller: "))


def test_decoding_loops_are_cut_and_real_repetition_kept() -> None:
    cut = remove_loops("我要投诉我要投诉我要投诉我要投诉我要投")
    assert cut.text == "我要投诉" and cut.loop_removed
    assert remove_loops("要要要要要要要要要要要要").text == "要"
    assert remove_loops("thank you thank you thank you thank you").text == "thank you"
    assert remove_loops("小区门口路灯坏了坏了坏了坏了坏了坏了坏了，一直没人修").text == "小区门口路灯坏了，一直没人修"
    for natural in ["对对对", "好的好的", "哈哈哈哈", "no no no", "我的电话是13333333333", "门牌号是一一一一一号"]:
        assert remove_loops(natural).text == natural and not remove_loops(natural).loop_removed


def test_language_is_read_from_the_text() -> None:
    assert guess_language("香港嘅消费市场从此不一样") == "yue"
    assert guess_language("我想问我在滨海新区有房") == "zh"
    assert guess_language("The birch canoe slid on the smooth planks") == "en"
    assert guess_language("...") is None


async def test_code_switched_call_is_tagged_per_segment(whisper: httpx.AsyncClient) -> None:
    call = build_call([Placement(0.5, "zh_firered_IT0011W0001.wav"), Placement(4, "en_speechbrain_example1.wav")], 9)
    body = (await whisper.post("/asr", files={"file": ("c.wav", wav_bytes(call))})).json()
    assert [s["language"] for s in body["segments"]] == ["zh", "en"]


class LoopingEngine:
    """The real tiny model's output, made to loop on its second segment as an audio LLM does on noise."""

    def __init__(self, inner: GlmAsrEngine) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.profile = inner.profile

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        return [
            ChunkResult("好的我帮您登记" + "要" * 40, 0.95) if c.duration > 2.5 else r
            for c, r in zip(chunks, self.inner.transcribe_batch(chunks), strict=True)
        ]


async def test_loops_and_low_confidence_are_flagged_for_review(tiny_glmasr_dir: Path, model_cache: Path) -> None:
    engine = LoopingEngine(GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, TokenBudget(16, 16)))
    call = build_call([Placement(0.5, "zh_firered_IT0011W0001.wav"), Placement(4, "en_speechbrain_example1.wav")], 9)
    with serve_in_thread(tiny_settings(tiny_glmasr_dir, model_cache, review_threshold=0.5), engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            body = (await client.post("/asr", files={"file": ("c.wav", wav_bytes(call))})).json()
    short, looping = body["segments"]
    assert looping["text"] == "好的我帮您登记要" and looping["loop_removed"] and looping["needs_review"]
    assert short["confidence"] < 0.5 and short["needs_review"] and not short["loop_removed"]
    assert body["needs_review"]


class RecordingEngine:
    def __init__(self, inner: GlmAsrEngine) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.profile = inner.profile
        self.hotwords: list[tuple[str, ...]] = []

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        self.hotwords += [chunk.hotwords for chunk in chunks]
        return self.inner.transcribe_batch(chunks)


async def test_hotwords_reach_the_engine(tiny_glmasr_dir: Path, model_cache: Path, tmp_path: Path) -> None:
    (tmp_path / "hotwords.txt").write_text("# districts\n滨海新区\n\n12345热线\n", encoding="utf-8")
    engine = RecordingEngine(GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, TokenBudget(16, 16)))
    settings = tiny_settings(tiny_glmasr_dir, model_cache, hotwords_file=tmp_path / "hotwords.txt")
    data = wav_bytes(clip_samples("zh_firered_IT0011W0001.wav"))
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            await client.post("/asr", files={"file": ("a.wav", data)}, data={"hotwords": "房地产，中介协会, 滨海新区"})
            await client.post("/asr", json={"audio": base64.b64encode(data).decode(), "hotwords": ["物业"]})
    assert engine.hotwords == [("滨海新区", "12345热线", "房地产", "中介协会"), ("滨海新区", "12345热线", "物业")]


async def test_hotwords_help_whisper_on_real_audio(whisper: httpx.AsyncClient) -> None:
    clip = "zh_wenet_aishell-BAC009S0724W0121.wav"
    data = (AUDIO_DIR / clip).read_bytes()
    reference = "广州市房地产中介协会分析"
    plain = (await whisper.post("/asr", files={"file": ("a.wav", data)}, data={"language": "zh"})).json()["text"]
    hinted = (
        await whisper.post(
            "/asr", files={"file": ("a.wav", data)}, data={"language": "zh", "hotwords": "房地产,中介协会"}
        )
    ).json()["text"]
    assert error_rate(reference, hinted, "zh") < error_rate(reference, plain, "zh"), (plain, hinted)
