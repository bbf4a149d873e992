"""POST /v1/audio/transcriptions driven by the official `openai` Python package, unchanged."""

import asyncio

import openai
import pytest
from audio_factory import AUDIO_DIR

JFK = AUDIO_DIR / "en_jfk.flac"


@pytest.fixture
def client(whisper_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{whisper_url}/v1", api_key="not-needed", max_retries=0, timeout=300)


def transcribe(client: openai.OpenAI, **kwargs: object) -> object:
    with open(JFK, "rb") as f:
        return client.audio.transcriptions.create(model="whisper-1", file=f, **kwargs)


async def test_json_and_text(client: openai.OpenAI) -> None:
    result = await asyncio.to_thread(transcribe, client, language="en")
    assert "ask not what your country can do for you" in result.text.lower()
    text = await asyncio.to_thread(transcribe, client, response_format="text")
    assert isinstance(text, str) and "country" in text.lower()


async def test_verbose_json_has_segments_and_language(client: openai.OpenAI) -> None:
    result = await asyncio.to_thread(transcribe, client, response_format="verbose_json", temperature=0.0)
    assert result.language == "english" and abs(result.duration - 11.0) < 0.1
    assert result.segments and all(s.end > s.start and s.avg_logprob <= 0 for s in result.segments)
    assert " ".join(s.text for s in result.segments).lower().count("country") == 2


async def test_subtitle_formats(client: openai.OpenAI) -> None:
    srt = await asyncio.to_thread(transcribe, client, response_format="srt")
    vtt = await asyncio.to_thread(transcribe, client, response_format="vtt")
    assert srt.startswith("1\n00:00:") and " --> " in srt
    assert vtt.startswith("WEBVTT")


async def test_prompt_and_errors(client: openai.OpenAI) -> None:
    with open(AUDIO_DIR / "zh_wenet_aishell-BAC009S0724W0121.wav", "rb") as f:
        hinted = await asyncio.to_thread(
            client.audio.transcriptions.create, model="whisper-1", file=f, language="zh", prompt="房地产,中介协会"
        )
    assert "房地产" in hinted.text
    with pytest.raises(openai.APIStatusError) as bad_file:
        await asyncio.to_thread(
            client.audio.transcriptions.create, model="whisper-1", file=("notes.txt", b"not audio at all" * 10)
        )
    assert bad_file.value.status_code == 415
    with pytest.raises(openai.UnprocessableEntityError):
        await asyncio.to_thread(transcribe, client, language="fr")
