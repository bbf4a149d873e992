"""deploy/nginx.conf on the real nginx binary, in front of the real service."""

import asyncio
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from audio_factory import clip_samples, wav_bytes
from conftest import tiny_settings
from processes import free_port

from asr_service.config import Settings
from asr_service.proxy import DEPLOY_DIR, running_nginx
from asr_service.server import serve_in_thread

USER, PASSWORD = "alice", "s3cret-pw"


@pytest.fixture(scope="module")
def proxy_url(tiny_glmasr_dir: Path, model_cache: Path) -> Iterator[str]:
    with serve_in_thread(tiny_settings(tiny_glmasr_dir, model_cache)) as service:
        upstream = service.removeprefix("http://")
        with running_nginx([upstream], free_port(), {USER: PASSWORD, "bob": "other-pw"}) as url:
            yield url


@pytest.fixture
async def proxy(proxy_url: str) -> Iterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=proxy_url, timeout=120) as client:
        yield client


SPEECH = wav_bytes(clip_samples("zh_firered_IT0011W0001.wav"))


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/asr"), ("GET", "/docs"), ("GET", "/metrics"), ("POST", "/v1/audio/transcriptions"), ("GET", "/"),
     ("GET", "/static/console.js"), ("GET", "/jobs"), ("POST", "/corrections")],
)  # fmt: skip
async def test_no_credentials_get_401(proxy: httpx.AsyncClient, method: str, path: str) -> None:
    response = await proxy.request(method, path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.json()["error"]["code"] == "unauthorized"


async def test_wrong_password_gets_401(proxy: httpx.AsyncClient) -> None:
    response = await proxy.post("/asr", files={"file": ("a.wav", SPEECH)}, auth=(USER, "wrong"))
    assert response.status_code == 401


async def test_right_credentials_transcribe_and_the_service_sees_the_user(
    proxy: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="asr_service.access"):
        response = await proxy.post("/asr", files={"file": ("a.wav", SPEECH)}, auth=(USER, PASSWORD))
    assert response.status_code == 200, response.text
    assert response.json()["duration"] == pytest.approx(1.99, abs=0.05)
    lines = [r.getMessage() for r in caplog.records if r.name == "asr_service.access"]
    assert any(re.search(rf'user="{USER}" "POST /asr" 200', line) for line in lines), lines


async def test_probes_need_no_credentials(proxy: httpx.AsyncClient) -> None:
    assert (await proxy.get("/healthz")).status_code == 200
    ready = await proxy.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


async def test_over_size_upload_is_refused_at_the_edge(proxy: httpx.AsyncClient) -> None:
    too_big = b"\0" * (Settings().max_upload_bytes + 1024)
    response = await proxy.post("/asr", content=too_big, auth=(USER, PASSWORD), headers={"content-type": "audio/wav"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_flooding_gets_429_with_json(proxy_url: str) -> None:
    async with httpx.AsyncClient(base_url=proxy_url, auth=("bob", "other-pw"), timeout=60) as client:
        responses = await asyncio.gather(*(client.get("/asr") for _ in range(80)))
    statuses = [r.status_code for r in responses]
    assert 405 in statuses, "the first requests pass through to the service"
    limited = [r for r in responses if r.status_code == 429]
    print(f"80 requests at once: {statuses.count(405)} passed, {len(limited)} got 429")
    assert len(limited) >= 30, statuses
    assert limited[0].json()["error"]["code"] == "rate_limited"
    assert limited[0].headers["retry-after"] == "1"


async def test_the_web_console_and_its_polling_are_not_throttled(proxy_url: str) -> None:
    """A room of call-takers behind one address: the page, its files and its reads of /jobs pass at a burst that
    would throttle uploads."""
    async with httpx.AsyncClient(base_url=proxy_url, auth=("bob", "other-pw"), timeout=60) as client:
        pages = await asyncio.gather(
            *(client.get(path) for path in ["/", "/static/console.js", "/static/console.css"] * 40)
        )
        reads = await asyncio.gather(*(client.get("/jobs?limit=5") for _ in range(60)))
    assert [r.status_code for r in pages] == [200] * 120
    assert [r.status_code for r in reads] == [200] * 60
    assert "12345 热线语音转写" in pages[0].text


def test_body_limit_matches_the_service_setting() -> None:
    config = (DEPLOY_DIR / "nginx.conf").read_text()
    assert re.search(r"client_max_body_size (\d+)m;", config).group(1) == str(int(Settings().max_upload_mb))
    assert re.search(r"proxy_read_timeout (\d+)s;", config).group(1) == str(int(Settings().request_timeout_seconds))
