"""Hostile and broken uploads: each gets its status and stable error code, and the service stays ready."""

import base64
import io
import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from audio_factory import FORMATS, Format, clip_samples, encode, float_wav_bytes, wav_bytes
from conftest import tiny_settings

from asr_service.audio.decode import SAMPLE_RATE
from asr_service.server import serve_in_thread

TIME_BOUND_SECONDS = 10.0
"""Every case here is answered within this (the tiny model transcribes the accepted ones in well under a second)."""
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 64


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    code: str | None
    files: dict[str, tuple[str, bytes]] | None = None
    data: dict[str, str] = field(default_factory=dict)
    json: object = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    path: str = "/asr"
    params: dict[str, str] = field(default_factory=dict)


def mp3() -> bytes:
    return encode(clip_samples("en_speechbrain_example1.wav"), FORMATS[3])


def switching_adts() -> bytes:
    """An AAC stream that changes from mono 16 kHz to stereo 44.1 kHz halfway (two recordings glued together)."""
    samples = clip_samples("en_speechbrain_example1.wav")
    return encode(samples, Format("adts-mono", "adts", "aac", 16_000)) + encode(
        samples, Format("adts-stereo", "adts", "aac", 44_100, channels=2)
    )


def speech_wav() -> bytes:
    return wav_bytes(clip_samples("en_speechbrain_example1.wav"))


def file(data: bytes, name: str = "call.wav") -> dict[str, tuple[str, bytes]]:
    return {"file": (name, data)}


def wav_header(rate: int, channels: int = 1, bits: int = 16, payload: int = 1000, codec: int = 1) -> bytes:
    """A WAV whose header says what a hostile or broken recorder wants it to say."""
    block = channels * bits // 8
    fmt = struct.pack("<IHHIIHH", 16, codec, channels, rate, rate * block, block, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + payload)
        + b"WAVEfmt "
        + fmt
        + b"data"
        + struct.pack("<I", payload)
        + (b"\x00" * payload)
    )


FFCONCAT = b"ffconcat version 1.0\nfile README.md\nfile pyproject.toml\n"
SDP = b"v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 5004 RTP/AVP 0\n"
HLS = b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"


rng = np.random.default_rng(0)
CASES = [
    Case("empty body, no content type", 415, "invalid_request", content=b""),
    Case("empty JSON body", 400, "invalid_request", content=b"", headers={"content-type": "application/json"}),
    Case("empty file", 422, "empty_audio", files=file(b"")),
    Case("random bytes", 415, "unsupported_audio", files=file(rng.bytes(4096))),
    Case("truncated MP3 header", 415, "unsupported_audio", files=file(mp3()[:200], "call.mp3")),
    Case("text file", 415, "unsupported_audio", files=file(b"hello, this is not audio\n" * 40, "notes.txt")),
    Case("invalid base64", 422, "invalid_request", json={"audio": "!!!not base64!!!"}),
    Case(
        "data URL of a PNG",
        415,
        "unsupported_audio",
        json={"audio": "data:image/png;base64," + base64.b64encode(PNG).decode()},
    ),
    Case("PNG bytes as a file", 415, "unsupported_audio", files=file(PNG, "photo.png")),
    Case("both forms at once", 400, "invalid_request", files=file(b"RIFF"), data={"audio": "UklGRg=="}),
    Case("unknown language (form)", 422, "invalid_request", files=file(b"RIFF"), data={"language": "fr"}),
    Case("unknown language (JSON)", 422, "invalid_request", json={"audio": "UklGRg==", "language": "klingon"}),
    Case("over-size upload", 413, "payload_too_large", files=file(rng.bytes(2 * 1024 * 1024))),
    Case(
        "over-size JSON",
        413,
        "payload_too_large",
        json={"audio": base64.b64encode(rng.bytes(2 * 1024 * 1024)).decode()},
    ),
    Case("over-long audio", 413, "audio_too_long", files=file(wav_bytes(np.zeros((1, 25 * 8000)), rate=8000))),
    Case("0-sample WAV", 422, "empty_audio", files=file(wav_bytes(np.zeros((1, 0))))),
    Case("NaN samples", 415, "unsupported_audio", files=file(float_wav_bytes(np.full(16000, np.nan, np.float32)))),
    Case("1 ms of audio", 422, "empty_audio", files=file(wav_bytes(np.zeros((1, 16))))),
    Case("format switching mid-stream", 200, None, files=file(switching_adts(), "glued.aac")),
    Case("8 channels", 200, None, files=file(wav_bytes(np.repeat(clip_samples("en_speechbrain_example1.wav"), 8, 0)))),
    Case(
        "192 kHz",
        200,
        None,
        files=file(
            wav_bytes(np.repeat(clip_samples("en_speechbrain_example1.wav"), 12, 1)[:, : 2 * 192_000], rate=192_000)
        ),
    ),
    Case("missing file field", 422, "invalid_request", data={"language": "zh"}, files={"other": ("x.wav", b"RIFF")}),
    Case("file sent as a text field", 422, "invalid_request", data={"file": "call.wav"}, files={"other": ("x", b"x")}),
    Case("malformed JSON", 400, "invalid_request", content=b'{"audio": ', headers={"content-type": "application/json"}),
    Case("JSON without audio", 422, "invalid_request", json={"language": "zh"}),
    Case("JSON with a non-string audio", 422, "invalid_request", json={"audio": 12345}),
    Case("plain text body", 415, "invalid_request", content=b"hello", headers={"content-type": "text/plain"}),
    # Containers that open other files or sockets are refused before they are opened.
    Case("ffconcat playlist naming local files", 415, "unsupported_audio", files=file(FFCONCAT, "list.ffconcat")),
    Case("SDP session description (UDP sockets)", 415, "unsupported_audio", files=file(SDP, "call.sdp")),
    Case("HLS playlist", 415, "unsupported_audio", files=file(HLS, "call.m3u8")),
    # Headers that promise hours of audio or absurd formats are refused from the header.
    Case("1 Hz WAV (28 KB claiming hours)", 415, "unsupported_audio", files=file(wav_header(1, payload=28_000))),
    Case("2 GHz sample rate", 415, "unsupported_audio", files=file(wav_header(2_000_000_000))),
    Case("64 channels", 415, "unsupported_audio", files=file(wav_bytes(rng.normal(0, 0.1, (64, 4000))))),
    Case("9 channels (over ASR_MAX_CHANNELS)", 415, "unsupported_audio", files=file(wav_bytes(np.zeros((9, 16000))))),
    Case("WAV with 0 bits per sample", 415, "unsupported_audio", files=file(wav_header(16000, bits=0))),
    Case("WAV with an unknown codec", 415, "unsupported_audio", files=file(wav_header(16000, codec=0x1234))),
    # Text fields that must never reach a tokenizer.
    Case(
        "hotword with a model control token", 422, "invalid_request", files=file(b"RIFF"), data={"hotwords": "<|en|>"}
    ),
    Case("over-long hotword", 422, "invalid_request", files=file(b"RIFF"), data={"hotwords": "滨" * 51}),
    Case(
        "101 hotwords", 422, "invalid_request", files=file(b"RIFF"), data={"hotwords": ",".join(map(str, range(101)))}
    ),
    Case("10 MB of hotwords", 413, "payload_too_large", files=file(b"RIFF"), data={"hotwords": "a," * 5_000_000}),
    Case("200 KB hotwords form field", 422, "invalid_request", files=file(b"RIFF"), data={"hotwords": "滨," * 100_000}),
    Case("4001 characters of hotwords", 422, "invalid_request", json={"audio": "UklGRg==", "hotwords": "ab" * 2001}),
    Case(
        "hotword with a lone surrogate",
        422,
        "invalid_request",
        content=b'{"audio": "UklGRg==", "hotwords": ["a\\ud800"]}',
        headers={"content-type": "application/json"},
    ),
    Case("hotword with a newline escape", 422, "invalid_request", json={"audio": "UklGRg==", "hotwords": ["a\x1bb"]}),
    Case(
        "100,000-deep JSON",
        400,
        "invalid_request",
        content=b"[" * 100_000 + b"]" * 100_000,
        headers={"content-type": "application/json"},
    ),
    # Parameters out of their range, in every place they can come from.
    Case("unknown response_format", 422, "invalid_request", files=file(b"RIFF"), data={"response_format": "xml"}),
    Case("unknown channel mode", 422, "invalid_request", json={"audio": "UklGRg==", "channels": "left"}),
    Case("redact not a boolean", 422, "invalid_request", files=file(b"RIFF"), data={"redact": "maybe"}),
    Case("bad language in the query string", 422, "invalid_request", files=file(b"RIFF"), params={"language": "xx"}),
    Case("hotwords as an object", 422, "invalid_request", json={"audio": "UklGRg==", "hotwords": {"a": 1}}),
    Case("unknown JSON field", 422, "invalid_request", json={"audio": "UklGRg==", "model": "other"}),
    # A JSON body takes its schema's types, not what pydantic could coerce (48 would be a call in 1970).
    Case("call time as a number", 422, "invalid_request", json={"audio": "UklGRg==", "call_time": 48}),
    Case("boolean as text in JSON", 422, "invalid_request", json={"audio": "UklGRg==", "redact": "true"}),
    Case("boolean as 1 in JSON", 422, "invalid_request", json={"audio": "UklGRg==", "analyze": 1}),
    Case("analyze: time as a number", 422, "invalid_request", path="/analyze", json={"text": "a", "time": 48}),
    Case("analyze: record as 0", 422, "invalid_request", path="/analyze", json={"text": "a", "record": 0}),
    # Times outside the years a call can have been made in (year 1 overflowed the repeat window: a 500).
    Case(
        "analyze: a call in year 1",
        422,
        "invalid_request",
        path="/analyze",
        json={"text": "a", "time": "0001-01-01T00:00:00Z"},
    ),
    Case(
        "call time in 9999 (form)",
        422,
        "invalid_request",
        files=file(b"RIFF"),
        data={"call_time": "9999-12-31T23:59:59-08:00"},
    ),
    Case(
        "corrections: segment as text",
        422,
        "invalid_request",
        path="/corrections",
        json={"job_id": "ab", "segment_id": "0", "corrected": "x"},
    ),
    Case("empty data URL", 422, "empty_audio", json={"audio": "data:audio/wav;base64,"}),
    Case("ZIP archive", 415, "unsupported_audio", files=file(b"PK\x03\x04" + rng.bytes(2000), "calls.zip")),
    Case("WAV at 400 kHz", 415, "unsupported_audio", files=file(wav_header(400_000))),
    # The OpenAI-compatible route takes the same hostile input.
    Case(
        "OpenAI: no file",
        422,
        "invalid_request",
        path="/v1/audio/transcriptions",
        data={"model": "whisper-1"},
        files={"x": ("x", b"x")},
    ),
    Case(
        "OpenAI: random bytes", 415, "unsupported_audio", path="/v1/audio/transcriptions", files=file(rng.bytes(3000))
    ),
    Case(
        "OpenAI: unknown language",
        422,
        "invalid_request",
        path="/v1/audio/transcriptions",
        files=file(b"RIFF"),
        data={"language": "fr"},
    ),
    Case(
        "OpenAI: unknown format",
        422,
        "invalid_request",
        path="/v1/audio/transcriptions",
        files=file(b"RIFF"),
        data={"response_format": "xml"},
    ),
    Case("OpenAI: JSON body", 415, "invalid_request", path="/v1/audio/transcriptions", json={"audio": "UklGRg=="}),
    Case("OpenAI: SDP file", 415, "unsupported_audio", path="/v1/audio/transcriptions", files=file(SDP, "call.sdp")),
    # /redact takes text from other systems.
    Case("redact: no text", 422, "invalid_request", path="/redact", json={"txt": "a"}),
    Case("redact: text not a string", 422, "invalid_request", path="/redact", json={"text": ["13812345678"]}),
    Case("redact: over 200,000 characters", 422, "invalid_request", path="/redact", json={"text": "1" * 200_001}),
    Case(
        "redact: malformed JSON",
        400,
        "invalid_request",
        path="/redact",
        content=b'{"text": ',
        headers={"content-type": "application/json"},
    ),
    Case(
        "malformed multipart",
        422,
        "invalid_request",
        content=b"--x\r\nbroken",
        headers={"content-type": "multipart/form-data; boundary=x"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_bad_input_gets_its_status_and_code(limited: httpx.AsyncClient, case: Case) -> None:
    started = time.perf_counter()
    response = await limited.post(
        case.path,
        files=case.files,
        data=case.data or None,
        json=case.json,
        content=case.content,
        headers=case.headers,
        params=case.params,
    )
    assert time.perf_counter() - started < TIME_BOUND_SECONDS, "refusing or transcribing this must be quick"
    assert response.status_code == case.status, response.text
    body = response.json()
    if case.code is None:
        assert body["duration"] > 0 and isinstance(body["segments"], list)
    else:
        assert body["error"]["code"] == case.code
        assert body["error"]["message"]
    assert (await limited.get("/readyz")).status_code == 200


async def test_a_truncated_recording_keeps_what_was_recorded(whisper: httpx.AsyncClient) -> None:
    data = encode(clip_samples("en_jfk.flac"), FORMATS[3])
    response = await whisper.post("/asr", files=file(data[: len(data) // 2], "cut.mp3"), data={"language": "en"})
    assert response.status_code == 200, response.text
    assert 4.5 < response.json()["duration"] < 6.5
    assert "americans" in response.json()["text"].lower()


@pytest.mark.parametrize(
    "noise",
    [np.zeros(16000 * 5), rng.normal(0, 0.01, 16000 * 5), rng.normal(0, 0.3, 16000 * 5)],
    ids=["digital silence", "line hiss", "loud white noise"],
)
async def test_silence_and_noise_give_no_words(whisper: httpx.AsyncClient, noise: np.ndarray) -> None:
    response = await whisper.post("/asr", files=file(wav_bytes(noise.reshape(1, -1).astype(np.float32))))
    assert response.status_code == 200
    body = response.json()
    assert body["text"] == "" and body["segments"] == [] and body["confidence"] is None
    assert body["duration"] == 5.0


async def test_unknown_routes_and_methods_answer_json(limited: httpx.AsyncClient) -> None:
    missing = await limited.get("/nope")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = await limited.get("/asr")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def two_track_recording(first: np.ndarray, second: np.ndarray) -> bytes:
    """A Matroska file with two audio tracks, as some recorders write (one may be silent)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        streams = [out.add_stream("pcm_s16le", rate=SAMPLE_RATE, layout="mono") for _ in range(2)]
        for stream, samples in zip(streams, (first, second), strict=True):
            frame = av.AudioFrame.from_ndarray(
                (samples * 32767).astype("<i2").reshape(1, -1), format="s16", layout="mono"
            )
            frame.sample_rate = SAMPLE_RATE
            for packet in stream.encode(frame):
                out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
    return buf.getvalue()


async def test_the_audio_track_that_carries_speech_is_transcribed(whisper: httpx.AsyncClient) -> None:
    speech = clip_samples("en_speechbrain_example1.wav")[0]
    data = two_track_recording(np.zeros_like(speech), speech)
    body = (await whisper.post("/asr", files=file(data, "two-tracks.mka"), data={"language": "en"})).json()
    assert "canoe" in body["text"].lower(), body


async def test_probes_answer_head(limited: httpx.AsyncClient) -> None:
    assert (await limited.head("/healthz")).status_code == 200
    assert (await limited.head("/readyz")).status_code == 200


async def test_an_over_long_openai_prompt_is_a_client_error(limited: httpx.AsyncClient) -> None:
    response = await limited.post(
        "/v1/audio/transcriptions", files=file(speech_wav()), data={"model": "whisper-1", "prompt": "a," * 150}
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"
    tokens = await limited.post("/v1/audio/transcriptions", files=file(speech_wav()), data={"prompt": "<|translate|>"})
    assert tokens.status_code == 422


async def test_the_access_log_cannot_be_forged(limited: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="asr_service.access"):
        await limited.get("/nope%0a1.2.3.4 user=admin", headers={"x-remote-user": 'eve" "GET /asr" 200'})
    lines = [r.getMessage() for r in caplog.records if r.name == "asr_service.access"]
    assert lines and all("\n" not in line for line in lines)
    assert 'user="eve\\" \\"GET /asr\\" 200"' in lines[-1] and "/nope\\n1.2.3.4" in lines[-1], lines[-1]


def test_a_stalled_upload_is_cut_off(tiny_glmasr_dir: Path, model_cache: Path) -> None:
    """Reached without nginx, a client that sends part of its body and stops gets 408 once it has paused longer than
    ASR_BODY_TIMEOUT_SECONDS, and the service stays ready."""
    with serve_in_thread(tiny_settings(tiny_glmasr_dir, model_cache, body_timeout_seconds=1)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /asr HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                + b'{"audio": "UklG'
            )
            started = time.perf_counter()
            answer = sock.recv(65536).decode("latin-1")
            waited = time.perf_counter() - started
        assert answer.startswith("HTTP/1.1 408"), answer
        assert '"code":"request_timeout"' in answer
        assert 0.9 < waited < 5
        assert httpx.get(f"{url}/readyz").status_code == 200


def test_slow_headers_and_huge_headers_are_cut_off(tiny_glmasr_dir: Path, model_cache: Path) -> None:
    """Reached without nginx: a client trickling its headers (slowloris) is disconnected after
    ASR_HEADER_TIMEOUT_SECONDS; a 100 KB header is refused with 400; an idle keep-alive connection is closed after
    ASR_KEEP_ALIVE_SECONDS. The service stays ready throughout."""
    settings = tiny_settings(tiny_glmasr_dir, model_cache, header_timeout_seconds=2, keep_alive_seconds=2)
    with serve_in_thread(settings) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            started = time.perf_counter()
            closed = False
            while time.perf_counter() - started < 8:
                try:
                    sock.sendall(b"X-a: b\r\n")  # one header a second, never the blank line
                    if sock.recv(1, socket.MSG_DONTWAIT) == b"":
                        closed = True
                        break
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
                    break
                time.sleep(0.5)
            held = time.perf_counter() - started
        assert closed and 1.5 < held < 4, f"a trickling client was held {held:.1f} s"

        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100_000)
            assert sock.recv(65536).startswith(b"HTTP/1.1 400"), "a 100 KB header must be refused"

        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            started = time.perf_counter()
            assert sock.recv(1) == b"", "an idle keep-alive connection must be closed"
            assert 1.5 < time.perf_counter() - started < 4
        assert httpx.get(f"{url}/readyz").status_code == 200
