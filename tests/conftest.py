"""Shared fixtures: the tiny GLM-ASR checkpoint, real uvicorn servers around the real app, HTTP clients."""

import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from asr_service.config import Settings
from asr_service.server import serve_in_thread

REPO = Path(__file__).resolve().parents[1]

# Every service the tests start (in threads or as subprocesses) keeps its jobs and stored audio here, never in the
# developer's own ~/.local/share/asr_service.
os.environ.setdefault("ASR_DATA_DIR", tempfile.mkdtemp(prefix="asr-test-data-"))


@pytest.fixture(scope="session")
def tiny_glmasr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built by the same script a developer runs, then loaded only through from_pretrained."""
    out = tmp_path_factory.mktemp("tiny-glmasr")
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_tiny_glmasr.py"), str(out)], check=True)
    return out


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asr-cache")


def tiny_settings(model_dir: Path, cache: Path, **overrides: object) -> Settings:
    return Settings(model=str(model_dir), dtype="float32", cache_dir=cache, **overrides)


@pytest.fixture(scope="session")
def whisper_url(model_cache: Path) -> Iterator[str]:
    with serve_in_thread(Settings(model="whisper-base", cache_dir=model_cache)) as url:
        yield url


@pytest.fixture(scope="session")
def glm_url(tiny_glmasr_dir: Path, model_cache: Path) -> Iterator[str]:
    settings = tiny_settings(tiny_glmasr_dir, model_cache, max_wait_ms=300, max_batch_size=8)
    with serve_in_thread(settings) as url:
        yield url


@pytest.fixture(scope="session")
def limits_url(tiny_glmasr_dir: Path, model_cache: Path) -> Iterator[str]:
    """Small limits, so over-size and over-long inputs stay small."""
    settings = tiny_settings(tiny_glmasr_dir, model_cache, max_upload_mb=1, max_audio_seconds=20)
    with serve_in_thread(settings) as url:
        yield url


@pytest.fixture
async def whisper(whisper_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=whisper_url, timeout=300) as client:
        yield client


@pytest.fixture
async def glm(glm_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=glm_url, timeout=300) as client:
        yield client


@pytest.fixture
async def limited(limits_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=limits_url, timeout=300) as client:
        yield client
