"""Every supported format, encoded at test time from a shared clip, transcribed through the real service."""

import base64
import datetime

import httpx
import pytest
from audio_factory import FORMATS, Format, clip_samples, encode

JFK_WORDS = ("country", "america")
"""At 8 kHz whisper-base hears "my fellow America," (run directly too): the format test checks decoding, not that."""


@pytest.fixture(scope="module")
def jfk() -> object:
    return clip_samples("en_jfk.flac")


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
async def test_each_format_is_transcribed(whisper: httpx.AsyncClient, jfk: object, fmt: Format) -> None:
    data = encode(jfk, fmt)
    response = await whisper.post("/asr", files={"file": (f"call.{fmt.container}", data)}, data={"language": "en"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert abs(body["duration"] - 11.0) < 0.1
    text = body["text"].lower()
    assert all(word in text for word in JFK_WORDS), text


async def test_json_base64_and_data_url_give_the_same_transcript(whisper: httpx.AsyncClient, jfk: object) -> None:
    data = encode(jfk, FORMATS[0])
    multipart = await whisper.post("/asr", files={"file": ("a.wav", data)})
    plain = await whisper.post("/asr", json={"audio": base64.b64encode(data).decode()})
    data_url = await whisper.post("/asr", json={"audio": "data:audio/wav;base64," + base64.b64encode(data).decode()})
    assert multipart.status_code == plain.status_code == data_url.status_code == 200
    assert multipart.json()["text"] == plain.json()["text"] == data_url.json()["text"]
    assert multipart.json()["language"] == "en"


async def test_query_string_options_apply_to_a_json_body(whisper: httpx.AsyncClient, jfk: object) -> None:
    """The query string is text and is read as a form is (`analyze=true`); the JSON body takes only JSON's own types."""
    audio = base64.b64encode(encode(jfk, FORMATS[0])).decode()
    query = {"analyze": "true", "call_time": "2026-11-22T08:15:00+08:00"}
    analysed = await whisper.post("/asr", params=query, json={"audio": audio})
    assert analysed.status_code == 200, analysed.text
    filed_at = datetime.datetime.fromisoformat(analysed.json()["ticket"]["time"])
    assert filed_at == datetime.datetime(2026, 11, 22, 0, 15, tzinfo=datetime.UTC)
    as_text = await whisper.post("/asr", json={"audio": audio, "analyze": "true"})
    assert as_text.status_code == 422 and "analyze" in as_text.json()["error"]["message"]
