"""The API contract: OpenAPI page, response shape, probes, metrics, and which model answers."""

import hashlib
import re
from pathlib import Path

import httpx
import pytest
from audio_factory import AUDIO_DIR

from asr_service.config import EMBEDDED_MODEL, Settings
from asr_service.engines.loader import detect_model_kind, resolve_model
from asr_service.engines.whisper_ct2 import assemble_embedded_model


async def test_docs_work_without_internet(limited: httpx.AsyncClient) -> None:
    page = await limited.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    external = re.findall(r"""(?:src|href)=["'](https?:)?//""", page.text)
    assert not external, "the page must not load anything from another host"
    assets = re.findall(r"""(?:src|href)=["'](/docs/assets/[^"']+)""", page.text)
    assert len(assets) >= 2
    for asset in assets:
        response = await limited.get(asset)
        assert response.status_code == 200 and len(response.content) > 500, asset
    assert (await limited.get("/openapi.json")).status_code == 200


async def test_docs_show_both_request_forms_with_examples(whisper: httpx.AsyncClient) -> None:
    assert (await whisper.get("/docs")).status_code == 200
    spec = (await whisper.get("/openapi.json")).json()
    body = spec["paths"]["/asr"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert body["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    assert body["multipart/form-data"]["example"] and body["application/json"]["example"]
    assert body["application/json"]["schema"]["required"] == ["audio"]


async def test_response_names_model_segments_and_timing(whisper: httpx.AsyncClient) -> None:
    data = (AUDIO_DIR / "en_jfk.flac").read_bytes()
    body = (await whisper.post("/asr", files={"file": ("jfk.flac", data)})).json()
    assert body["model"] == "Systran/faster-whisper-base"
    assert re.fullmatch(r"[0-9a-f]{32}", body["id"])
    assert body["language"] == "en" and 0 < body["confidence"] <= 1
    starts = [s["start"] for s in body["segments"]]
    assert starts == sorted(starts) and all(0 <= s["start"] < s["end"] <= body["duration"] for s in body["segments"])
    assert [s["id"] for s in body["segments"]] == list(range(len(body["segments"])))
    assert set(body["timing"]) == {"decode_ms", "vad_ms", "queue_ms", "inference_ms", "total_ms"}
    assert body["timing"]["inference_ms"] > 0 and body["timing"]["total_ms"] >= body["timing"]["inference_ms"]


async def test_chinese_comes_out_in_simplified_characters(whisper: httpx.AsyncClient) -> None:
    data = (AUDIO_DIR / "zh_wenet_aishell-BAC009S0724W0121.wav").read_bytes()
    text = (await whisper.post("/asr", files={"file": ("a.wav", data)}, data={"language": "zh"})).json()["text"]
    assert "广州" in text and "廣" not in text


async def test_probes_and_metrics(glm: httpx.AsyncClient, tiny_glmasr_dir: Path) -> None:
    assert (await glm.get("/healthz")).json() == {"status": "ok"}
    ready = await glm.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "model": str(tiny_glmasr_dir)}
    await glm.post("/asr", files={"file": ("a.wav", (AUDIO_DIR / "zh_firered_IT0011W0001.wav").read_bytes())})
    metrics = (await glm.get("/metrics")).text
    for name in (
        "asr_queue_depth",
        "asr_batch_size_bucket",
        "asr_requests_total",
        "asr_audio_seconds_total",
        "asr_inference_seconds_bucket",
    ):
        assert name in metrics
    assert re.search(r'^asr_requests_total\{route="/asr",status="200"\} [1-9]', metrics, re.M)


def test_auto_picks_the_embedded_model_without_a_gpu() -> None:
    assert resolve_model("auto", "cpu") == EMBEDDED_MODEL
    assert resolve_model("auto", "cuda") == "zai-org/GLM-ASR-Nano-2512"


def test_engine_is_chosen_by_what_the_folder_holds(tiny_glmasr_dir: Path, model_cache: Path, tmp_path: Path) -> None:
    assert detect_model_kind(str(tiny_glmasr_dir)) == ("glmasr", tiny_glmasr_dir)
    whisper_dir = assemble_embedded_model(model_cache)
    assert detect_model_kind(str(whisper_dir)) == ("ctranslate2", whisper_dir)
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="neither a GLM-ASR"):
        detect_model_kind(str(tmp_path))


def test_embedded_model_is_verified(model_cache: Path) -> None:
    folder = assemble_embedded_model(model_cache)
    digest = hashlib.sha256((folder / "model.bin").read_bytes()).hexdigest()
    assert digest == "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"


def test_settings_come_from_asr_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASR_MAX_BATCH_SIZE", "4")
    monkeypatch.setenv("ASR_MAX_SEGMENT_SECONDS", "12")
    settings = Settings()
    assert settings.max_batch_size == 4 and settings.max_segment_seconds == 12
