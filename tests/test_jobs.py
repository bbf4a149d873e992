"""Durable jobs through the real service: submit, follow, fetch every format, list, cancel, delete, idempotency,
priority against /asr, the output folder, and survival of a SIGKILL."""

import asyncio
import datetime
import hashlib
import hmac
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import torch
from audio_factory import Placement, build_call, clip_samples, wav_bytes
from conftest import tiny_settings
from engines import GatedEngine, SlowEngine
from processes import free_port, wait_ready

from asr_service.engines.base import TokenBudget
from asr_service.engines.glm_asr import GlmAsrEngine
from asr_service.server import serve_in_thread

CALL = wav_bytes(clip_samples("zh_funasr_llamacpp_sample.wav"))


@pytest.fixture(scope="module")
def tiny_engine(tiny_glmasr_dir: Path) -> GlmAsrEngine:
    return GlmAsrEngine(tiny_glmasr_dir, "cpu", torch.float32, TokenBudget(16, 16))


async def wait_for(client: httpx.AsyncClient, job_id: str, statuses: set[str], seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = (await client.get(f"/jobs/{job_id}")).json()
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['status']} after {seconds} s")


async def submit(client: httpx.AsyncClient, data: bytes = CALL, name: str = "call.wav", **fields: str) -> dict:
    response = await client.post("/jobs", files={"file": (name, data)}, data=fields)
    assert response.status_code == 202, response.text
    return response.json()


@pytest.fixture(scope="module")
def jobs_server(tiny_glmasr_dir: Path, model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    data = tmp_path_factory.mktemp("jobs-data")
    out = tmp_path_factory.mktemp("jobs-out")
    settings = tiny_settings(
        tiny_glmasr_dir, model_cache, data_dir=data, output_dir=out, output_formats="json,srt", job_poll_seconds=0.2
    )
    with serve_in_thread(settings) as url:
        yield url, data, out  # type: ignore[misc]


@pytest.fixture
async def jobs(jobs_server: tuple[str, Path, Path]) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=jobs_server[0], timeout=120) as client:
        yield client


async def test_a_job_runs_to_completion_and_serves_every_format(
    jobs: httpx.AsyncClient, jobs_server: tuple[str, Path, Path]
) -> None:
    _, data_dir, out = jobs_server
    response = await jobs.post("/jobs", files={"file": ("市民来电 0815.wav", CALL)}, data={"language": "zh"})
    assert response.status_code == 202
    created = response.json()
    assert created["status"] == "queued" and response.headers["location"] == f"/jobs/{created['id']}"
    job = await wait_for(jobs, created["id"], {"succeeded", "failed"})
    assert job["status"] == "succeeded" and job["progress"] == 1.0 and job["attempts"] == 1, job
    direct = (await jobs.post("/asr", files={"file": ("call.wav", CALL)}, data={"language": "zh"})).json()
    assert job["result"]["text"] == direct["text"] and job["result"]["segments"]
    assert job["filename"] == "市民来电 0815.wav"
    for response_format, media_type in [
        ("json", "application/json"),
        ("text", "text/plain"),
        ("srt", "application/x-subrip"),
        ("vtt", "text/vtt"),
    ]:
        result = await jobs.get(f"/jobs/{created['id']}/result", params={"response_format": response_format})
        assert result.status_code == 200 and result.headers["content-type"].startswith(media_type)
    assert not any((data_dir / "audio").rglob(created["id"])), "the upload is deleted when its job ends"
    day = datetime.date.today().isoformat()
    saved = sorted(p.name for p in (out / day).iterdir() if p.name.startswith("市民来电_0815_"))
    assert saved == [f"市民来电_0815_{job['result']['id']}.json", f"市民来电_0815_{job['result']['id']}.srt"]


async def test_a_repeated_submission_with_the_same_idempotency_key_returns_the_first_job(
    jobs: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "upload-2026-11-22-0001"}
    first = await jobs.post("/jobs", files={"file": ("a.wav", CALL)}, headers=headers)
    again = await jobs.post("/jobs", files={"file": ("a.wav", CALL)}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]


async def test_jobs_are_listed_newest_first_with_cursor_paging_and_a_status_filter(jobs: httpx.AsyncClient) -> None:
    ids = [(await submit(jobs))["id"] for _ in range(5)]
    for job_id in ids:
        await wait_for(jobs, job_id, {"succeeded"})
    seen: list[str] = []
    cursor = None
    while True:
        page = (await jobs.get("/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        assert len(page["jobs"]) <= 2 and all(job["result"] is None for job in page["jobs"])
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen[:5] == ids[::-1], "newest first"
    assert len(seen) == len(set(seen)), "no job on two pages"
    succeeded = (await jobs.get("/jobs", params={"status": "succeeded", "limit": 200})).json()["jobs"]
    assert set(ids) <= {job["id"] for job in succeeded}
    assert (await jobs.get("/jobs", params={"status": "lost"})).status_code == 422
    metrics = (await jobs.get("/metrics")).text
    assert 'asr_jobs{status="succeeded"}' in metrics


async def test_a_job_that_cannot_be_decoded_fails_with_its_error(jobs: httpx.AsyncClient) -> None:
    created = await submit(jobs, os.urandom(4000), "broken.wav")
    job = await wait_for(jobs, created["id"], {"succeeded", "failed"})
    assert job["status"] == "failed" and job["error"]["code"] == "unsupported_audio"
    result = await jobs.get(f"/jobs/{created['id']}/result")
    assert result.status_code == 409 and result.json()["error"]["code"] == "job_not_finished"


async def test_deleting_a_finished_job_removes_it(jobs: httpx.AsyncClient) -> None:
    created = await submit(jobs)
    await wait_for(jobs, created["id"], {"succeeded"})
    assert (await jobs.delete(f"/jobs/{created['id']}")).status_code == 204
    gone = await jobs.get(f"/jobs/{created['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert (await jobs.get("/jobs/..%2F..%2Fetc")).status_code == 404


async def test_callbacks_only_go_to_allowed_hosts(jobs: httpx.AsyncClient) -> None:
    refused = await jobs.post(
        "/jobs", files={"file": ("a.wav", CALL)}, data={"callback_url": "http://169.254.169.254/latest/meta-data"}
    )
    assert refused.status_code == 422 and "callback" in refused.json()["error"]["message"]


async def test_cancelling_a_running_job_takes_its_segments_out_of_the_queue(
    tiny_glmasr_dir: Path, model_cache: Path, tiny_engine: GlmAsrEngine, tmp_path: Path
) -> None:
    engine = GatedEngine(tiny_engine)
    settings = tiny_settings(tiny_glmasr_dir, model_cache, data_dir=tmp_path, max_batch_size=1, job_lease_seconds=3)
    clips = ["zh_firered_IT0011W0001.wav", "en_speechbrain_example1.wav", "zh_wenet_aishell-BAC009S0724W0121.wav"]
    call = wav_bytes(build_call([Placement(1 + 8 * i, name) for i, name in enumerate(clips * 2)], 50))
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            created = await submit(client, call)
            await asyncio.to_thread(engine.entered.wait, 30)  # the first segment is in the model
            assert (await client.get(f"/jobs/{created['id']}")).json()["status"] == "running"
            cancelled = await client.delete(f"/jobs/{created['id']}")
            assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
            await asyncio.sleep(1.5)  # the runner notices at its next lease renewal (a third of 3 s)
            engine.gate.set()
            await asyncio.sleep(1.0)
            assert len(engine.seen) <= 2, f"{len(engine.seen)} of 6 segments reached the model after cancelling"
            job = (await client.get(f"/jobs/{created['id']}")).json()
            assert job["status"] == "cancelled" and job["result"] is None
            assert not any((tmp_path / "audio").rglob(created["id"]))


async def test_an_asr_request_goes_ahead_of_queued_bulk_jobs(
    tiny_glmasr_dir: Path, model_cache: Path, tiny_engine: GlmAsrEngine, tmp_path: Path
) -> None:
    """40 bulk jobs on a model that takes 0.3 s a segment (12 s of work): a /asr call sent behind them is answered
    within 4 batches, and the jobs keep going meanwhile."""
    engine = SlowEngine(tiny_engine, seconds=0.3)
    settings = tiny_settings(tiny_glmasr_dir, model_cache, data_dir=tmp_path, max_batch_size=1, job_slots=8)
    short = wav_bytes(clip_samples("zh_firered_IT0011W0001.wav"))
    with serve_in_thread(settings, engine) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            ids = [(await submit(client, short))["id"] for _ in range(40)]
            await asyncio.sleep(1.0)
            started = time.perf_counter()
            answer = await client.post("/asr", files={"file": ("now.wav", short)})
            waited = time.perf_counter() - started
            print(f"/asr answered in {waited:.2f} s with 40 bulk jobs queued")
            assert answer.status_code == 200 and waited < 4 * 0.3 + 1.0
            statuses = [(await client.get(f"/jobs/{job_id}")).json()["status"] for job_id in ids]
            assert statuses.count("queued") + statuses.count("running") >= 20, "the bulk jobs were still waiting"
            assert statuses.count("succeeded") >= 1, "bulk jobs progress meanwhile"


def start_service(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "asr_service", "serve"], env=env, stdout=out, stderr=out)


def test_jobs_survive_sigkill_and_finish_exactly_once(tiny_glmasr_dir: Path, model_cache: Path, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ASR_MODEL": str(tiny_glmasr_dir),
        "ASR_DTYPE": "float32",
        "ASR_CACHE_DIR": str(model_cache),
        "ASR_PORT": str(port),
        "ASR_DATA_DIR": str(tmp_path / "data"),
        "ASR_OUTPUT_DIR": str(tmp_path / "out"),
        "ASR_JOB_LEASE_SECONDS": "3",
        "ASR_JOB_SLOTS": "2",
        "ASR_JOB_POLL_SECONDS": "0.2",
    }
    log = tmp_path / "service.log"
    call = wav_bytes(build_call([Placement(1 + 7 * i, "zh_funasr_llamacpp_sample.wav") for i in range(6)], 45))
    service = start_service(env, log)
    try:
        wait_ready(url)
        ids = [httpx.post(f"{url}/jobs", files={"file": (f"call{i}.wav", call)}).json()["id"] for i in range(6)]
        deadline = time.monotonic() + 60
        while not any(httpx.get(f"{url}/jobs/{i}").json()["status"] == "running" for i in ids):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        service.send_signal(signal.SIGKILL)
        service.wait(timeout=30)
        killed_at = time.monotonic()
        service = start_service(env, log)
        wait_ready(url)
        jobs = {}
        for job_id in ids:
            while (job := httpx.get(f"{url}/jobs/{job_id}").json())["status"] not in ("succeeded", "failed"):
                assert time.monotonic() - killed_at < 120, job
                time.sleep(0.1)
            # whoever sees `succeeded` finds the transcript saved, named after the job
            assert job["result"]["id"] == job_id and list((tmp_path / "out").rglob(f"call*_{job_id}.json"))
            jobs[job_id] = job
        attempts = [job["attempts"] for job in jobs.values()]
        print(f"all 6 jobs done {time.monotonic() - killed_at:.1f} s after the SIGKILL; attempts {attempts}")
        assert all(job["status"] == "succeeded" for job in jobs.values())
        assert any(job["attempts"] == 2 for job in jobs.values()), "a job was running when the service was killed"
        assert time.monotonic() - killed_at < 30, "SQLite: the restart resumes at once, without waiting out leases"
        saved = [p.name for p in (tmp_path / "out").rglob("*.json")]
        assert len(saved) == 6, "each job's result is saved exactly once"
        assert {job["result"]["id"] for job in jobs.values()} == {name.rsplit("_", 1)[1][:-5] for name in saved}
    finally:
        service.kill()
        service.wait(timeout=30)


class Receiver(http.server.BaseHTTPRequestHandler):
    """A ticket system's callback endpoint: fails the first delivery, accepts the next."""

    deliveries: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.deliveries.append((dict(self.headers), body))
        self.send_response(503 if len(self.deliveries) == 1 else 204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


async def test_a_finished_job_is_posted_to_its_callback_signed_and_retried(
    tiny_glmasr_dir: Path, model_cache: Path, tmp_path: Path
) -> None:
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    secret = "shared-secret-of-the-ticket-system"
    settings = tiny_settings(
        tiny_glmasr_dir,
        model_cache,
        data_dir=tmp_path,
        callback_allowed_hosts="127.0.0.1",
        callback_secret=secret,
        callback_first_delay_seconds=0.2,
    )
    try:
        with serve_in_thread(settings) as url:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                callback = f"http://127.0.0.1:{receiver.server_port}/hooks/asr"
                created = await submit(client, callback_url=callback)
                await wait_for(client, created["id"], {"succeeded"})
                for _ in range(50):
                    job = (await client.get(f"/jobs/{created['id']}")).json()
                    if len(job["callbacks"]) == 2:
                        break
                    await asyncio.sleep(0.1)
        assert [attempt["status"] for attempt in job["callbacks"]] == [503, 204], job["callbacks"]
        headers, body = Receiver.deliveries[-1]
        assert json.loads(body)["id"] == created["id"] and json.loads(body)["result"]["text"] == job["result"]["text"]
        timestamp = headers["X-ASR-Timestamp"]
        expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert headers["X-ASR-Signature"] == f"sha256={expected}"
        assert abs(time.time() - int(timestamp)) < 60
    finally:
        receiver.shutdown()
        receiver.server_close()
