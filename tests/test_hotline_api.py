"""Hotline tickets through the real service: POST /analyze with its history, and analyze=true on /asr and /jobs."""

import asyncio
import time
import uuid

import httpx
from audio_factory import clip_samples, wav_bytes

CALL = wav_bytes(clip_samples("zh_funasr_llamacpp_sample.wav"))


async def test_analyze_files_tickets_and_finds_the_repeat(glm: httpx.AsyncClient) -> None:
    first, second, other = (uuid.uuid4().hex for _ in range(3))
    place = f"朝阳区望京西园{uuid.uuid4().int % 900 + 100}号院"  # a place no other test files
    response = await glm.post(
        "/analyze",
        json={"text": f"{place}5号楼电梯坏了，有人被困", "call_id": first, "time": "2026-11-01T08:00:00+08:00",
              "record": True},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    ticket = response.json()
    assert ticket["category"] == "住房物业" and ticket["urgency"] == "高" and ticket["emergency_referral"] == "119"
    assert ticket["district"] == "朝阳区" and ticket["department"] == "朝阳区住房和城乡建设委员会"
    assert ticket["location"] == f"{place}5号楼"
    repeat = (
        await glm.post(
            "/analyze",
            json={
                "text": f"{place}五号楼的电题又停了",
                "call_id": second,
                "time": "2026-11-05T08:00:00+08:00",
                "record": True,
            },
        )  # fmt: skip
    ).json()
    assert repeat["repeat_of"] == [first] and repeat["repeat_score"] > 0.5
    body = {"text": f"{place}5号楼电梯坏了", "call_id": other, "time": "2026-11-06T08:00:00+08:00"}
    unrecorded = (await glm.post("/analyze", json=body)).json()
    assert unrecorded["repeat_of"] == [first, second]
    body |= {"call_id": uuid.uuid4().hex, "time": "2026-11-07T08:00:00+08:00"}
    assert (await glm.post("/analyze", json=body)).json()["repeat_of"] == [first, second]  # `other` was not filed


async def test_analyze_refuses_bad_requests_with_stable_codes(glm: httpx.AsyncClient) -> None:
    too_long = await glm.post("/analyze", json={"text": "井" * 50_001})
    assert too_long.status_code == 422 and too_long.json()["error"]["code"] == "invalid_request"
    bad_time = await glm.post("/analyze", json={"text": "路灯坏了", "time": "yesterday"})
    assert bad_time.status_code == 422 and bad_time.json()["error"]["code"] == "invalid_request"
    malformed = await glm.post("/analyze", content=b"{", headers={"content-type": "application/json"})
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "invalid_request"
    started = time.perf_counter()
    longest = await glm.post("/analyze", json={"text": "煤气味着火被困打架" * 5_000})
    assert longest.status_code == 200 and time.perf_counter() - started < 10
    for nothing_said in ("。", "，。！？", " \u3000 "):  # punctuation only (schemathesis found a 500 on "。")
        empty = await glm.post("/analyze", json={"text": nothing_said})
        assert empty.status_code == 200 and empty.json()["summary"] == "", empty.text
    assert (await glm.get("/readyz")).status_code == 200


async def test_asr_attaches_the_ticket_of_the_transcript(whisper: httpx.AsyncClient) -> None:
    response = await whisper.post(
        "/asr", files={"file": ("call.wav", CALL)}, data={"language": "zh", "analyze": "true"}
    )
    assert response.status_code == 200, response.text
    result = response.json()
    ticket = result["ticket"]
    assert ticket["call_id"] == result["id"]
    assert ticket["speaker_text"] == result["text"]
    assert ticket["request_type"] == "咨询"  # 我想问我在滨海新区有房: a question
    plain = (await whisper.post("/asr", files={"file": ("call.wav", CALL)}, data={"language": "zh"})).json()
    assert plain["ticket"] is None


async def test_a_job_files_its_ticket_at_the_calls_time(glm: httpx.AsyncClient) -> None:
    response = await glm.post(
        "/jobs",
        files={"file": ("20261103_0815.wav", CALL)},
        data={"analyze": "true", "call_time": "2026-11-03T08:15:00+08:00"},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    for _ in range(600):
        job = (await glm.get(f"/jobs/{job_id}")).json()
        if job["status"] in ("succeeded", "failed"):
            break
        await asyncio.sleep(0.1)
    assert job["status"] == "succeeded", job
    ticket = job["result"]["ticket"]
    assert ticket["call_id"] == job_id
    assert ticket["time"].startswith("2026-11-03T00:15:00") or ticket["time"].startswith("2026-11-03T08:15:00")
