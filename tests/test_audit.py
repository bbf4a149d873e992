"""Audit log, retention, and where the service writes: what a data-protection officer would check."""

import datetime
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from audio_factory import clip_samples, wav_bytes
from conftest import tiny_settings
from processes import free_port, wait_ready

from asr_service.hotline.analysis import Analyzer
from asr_service.jobs.store import JobStore, NewJob
from asr_service.jobs.tickets import TicketBook
from asr_service.retention import purge_expired
from asr_service.server import serve_in_thread

CREDENTIALS = "Basic YXNyOnMzY3JldC1wYXNzd29yZA=="  # asr:s3cret-password


def audit_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_the_audit_log_says_who_sent_what_and_never_holds_the_audio_or_text(
    tiny_glmasr_dir: Path, model_cache: Path, tmp_path: Path
) -> None:
    audit = tmp_path / "audit" / "audit.jsonl"
    speech = wav_bytes(clip_samples("zh_funasr_llamacpp_sample.wav"))
    settings = tiny_settings(tiny_glmasr_dir, model_cache, audit_log=audit)
    with serve_in_thread(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            headers = {"x-remote-user": "agent007", "x-request-id": "nginx-abc123", "authorization": CREDENTIALS}
            ok = await client.post(
                "/asr",
                files={"file": ("call.wav", speech)},
                data={"language": "zh", "hotwords": "张三,滨海新区"},
                headers=headers,
            )
            bad = await client.post("/asr", files={"file": ("x.wav", b"not audio at all" * 10)})
            await client.post("/redact", json={"text": "电话13812345678"})
            await client.get("/healthz")
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "nginx-abc123"
    assert bad.status_code == 415 and len(bad.headers["x-request-id"]) == 32
    first, second, third = audit_lines(audit)  # probes are not audited
    assert first["request_id"] == "nginx-abc123" and first["user"] == "agent007" and first["client"] == "127.0.0.1"
    assert first["audio"] == {"sha256": hashlib.sha256(speech).hexdigest(), "bytes": len(speech)}
    assert first["audio_seconds"] == ok.json()["duration"] and first["transcript_id"] == ok.json()["id"]
    assert first["parameters"]["language"] == "zh" and first["parameters"]["hotwords"] == 2
    assert first["status"] == 200 and first["model"] == ok.json()["model"] and first["latency_ms"] > 0
    assert set(first["timing"]) == {"decode_ms", "vad_ms", "queue_ms", "inference_ms", "total_ms"}
    assert second["status"] == 415 and second["error_code"] == "unsupported_audio" and second["audio"]["bytes"] == 160
    assert third["path"] == "/redact" and third["redactions"] == {"mobile": 1}
    written = audit.read_text(encoding="utf-8")
    for secret in ("text", ok.json()["text"] or "-", "13812345678", "张三", "YXNyOnMzY3JldC1wYXNzd29yZA", "s3cret"):
        assert f'"{secret}"' not in written and secret not in written.replace('"text"', ""), secret


async def test_the_audit_log_keeps_text_only_when_told_and_rotates(
    tiny_glmasr_dir: Path, model_cache: Path, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    settings = tiny_settings(
        tiny_glmasr_dir, model_cache, audit_log=audit, audit_text=True, audit_max_mb=0.002, audit_backups=2
    )
    with serve_in_thread(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            for _ in range(40):
                await client.post("/redact", json={"text": "我的车牌是粤B12345" * 5})
            answer = await client.post(
                "/asr", files={"file": ("call.wav", wav_bytes(clip_samples("zh_firered_IT0011W0001.wav")))}
            )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 2100 for p in tmp_path.iterdir())
    assert audit_lines(audit)[-1]["text"] == answer.json()["text"]


def test_retention_deletes_stored_files_past_their_age_and_nothing_else(tmp_path: Path) -> None:
    now = time.time()
    old, recent = now - 31 * 86400, now - 29 * 86400
    files = {
        "audio/2026/10/01/call-1.wav": old,
        "audio/2026/11/01/call-2.wav": recent,
        "results/call-1.json": old,
        "corrections/call-1.json": old,
        "corrections/call-2.json": recent,
        "jobs.sqlite3": old,  # not a stored recording: outside the retention folders
        "audit.jsonl": old,
    }
    for name, mtime in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 100)
        os.utime(path, (mtime, mtime))
    report = purge_expired(tmp_path, 30, now=now)
    assert report.files == 3 and report.bytes == 300
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["audio/2026/11/01/call-2.wav", "audit.jsonl", "corrections/call-2.json", "jobs.sqlite3"]
    assert not (tmp_path / "audio/2026/10").exists(), "emptied folders go too"


def files_under(*roots: Path) -> set[Path]:
    return {p for root in roots for p in root.rglob("*") if p.is_file()}


def test_the_service_writes_only_to_its_data_folder_and_audit_log(
    tiny_glmasr_dir: Path, model_cache: Path, tmp_path: Path
) -> None:
    """`asr-service serve` with its working directory, home and temp folder watched: after start-up, requests of
    every kind (good, hostile, redaction) leave files only in ASR_DATA_DIR and the audit log. Old stored files are
    purged at start when ASR_RETENTION_DAYS is set."""
    cwd, home, tmp, data = (tmp_path / name for name in ("cwd", "home", "tmp", "data"))
    for folder in (cwd, home, tmp, data / "audio"):
        folder.mkdir(parents=True)
    expired = data / "audio" / "old-call.wav"
    expired.write_bytes(b"x")
    os.utime(expired, (time.time() - 10 * 86400,) * 2)
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "ASR_MODEL": str(tiny_glmasr_dir),
        "ASR_DTYPE": "float32",
        "ASR_CACHE_DIR": str(model_cache),
        "ASR_PORT": str(port),
        "ASR_DATA_DIR": str(data),
        "ASR_AUDIT_LOG": str(data / "audit.jsonl"),
        "ASR_RETENTION_DAYS": "7",
        "HF_HUB_OFFLINE": "1",
    }
    service = subprocess.Popen([sys.executable, "-m", "asr_service", "serve"], cwd=cwd, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        before = files_under(cwd, home, tmp)
        speech = wav_bytes(clip_samples("en_speechbrain_example1.wav"))
        assert httpx.post(f"{url}/asr", files={"file": ("c.wav", speech)}, timeout=60).status_code == 200
        assert httpx.post(f"{url}/asr", files={"file": ("c.wav", b"\x00" * 3000)}, timeout=60).status_code == 415
        big = httpx.post(f"{url}/asr", files={"file": ("c.wav", speech * 40)}, timeout=60)  # several MB, kept in memory
        assert big.status_code == 200

        def audit_lines() -> list[str]:
            return (data / "audit.jsonl").read_text().splitlines()

        assert len(audit_lines()) == 3, "a caller holding its answer finds the audit line already written"
        with httpx.Client(base_url=url) as client:  # one kept-alive connection: the next request follows at once
            for written in range(4, 24):
                assert client.post("/redact", json={"text": "13812345678"}).status_code == 200
                assert len(audit_lines()) == written
        assert files_under(cwd, home, tmp) == before == set(), "nothing may be written outside the data folder"
        assert not expired.exists(), "a stored file past ASR_RETENTION_DAYS is purged at start"
    finally:
        service.terminate()
        service.wait(timeout=60)


def test_retention_deletes_finished_jobs_and_their_results_but_not_waiting_ones(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    done, _ = store.create(NewJob("batch", {}, "0" * 64, 10))
    waiting, _ = store.create(NewJob("batch", {}, "1" * 64, 10))
    claimed = store.claim("replica", 30)
    assert claimed is not None and claimed.id == done.id
    store.finish(done.id, "replica", "succeeded", {"text": "市民反映噪音扰民"}, None)
    cutoff = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
    assert store.purge_finished(cutoff) == 1
    assert store.get(done.id) is None and store.get(waiting.id) is not None
    store.close()


def test_retention_deletes_filed_tickets_of_calls_before_the_cutoff(tmp_path: Path) -> None:
    store = JobStore(f"sqlite:///{tmp_path / 'jobs.sqlite3'}")
    tickets = TicketBook(store.engine, Analyzer.load())
    old = tickets.file("望京西园三区5号楼电梯坏了", "old", datetime.datetime(2026, 1, 5, tzinfo=datetime.UTC))
    recent = tickets.file("望京西园三区5号楼电梯又坏了", "recent", datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC))
    assert recent.repeat_of == []  # the old call is outside the 30-day window
    assert tickets.purge_before(datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)) == 1
    assert tickets.get(old.call_id or "") is None and tickets.get("recent") is not None
    store.close()
