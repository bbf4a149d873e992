"""Callbacks: a finished job POSTed to its `callback_url`. Only hosts an operator listed in
`ASR_CALLBACK_ALLOWED_HOSTS`, so a caller cannot make the service probe the internal network; empty (the default)
turns callbacks off."""

import asyncio
import datetime
import hashlib
import hmac
import logging
import time
from urllib.parse import urlsplit

import httpx

from asr_service.errors import InvalidParameterError
from asr_service.jobs.store import JobStore

logger = logging.getLogger(__name__)


def check_callback_url(url: str, allowed_hosts: frozenset[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParameterError("callback_url: must be an http:// or https:// URL")
    if not allowed_hosts:
        raise InvalidParameterError("callback_url: callbacks are off on this server (ASR_CALLBACK_ALLOWED_HOSTS)")
    if parts.hostname.lower() not in allowed_hosts:
        raise InvalidParameterError(f"callback_url: the host {parts.hostname!r} is not allowed on this server")


SIGNATURE_HEADER = "X-ASR-Signature"
TIMESTAMP_HEADER = "X-ASR-Timestamp"
JOB_HEADER = "X-ASR-Job"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over `<timestamp>.<body>`: the timestamp is signed too, so a receiver that
    rejects old timestamps cannot be fed a replayed delivery with a fresh one."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class CallbackSender:
    """Delivers a finished job to its `callback_url`: signed, retried with exponential backoff, every attempt recorded
    on the job. Deliveries run beside the job slots, so a receiver that keeps failing never holds up the queue.
    Redirects are not followed (a redirect could point anywhere)."""

    def __init__(self, store: JobStore, secret: str, attempts: int, first_delay: float, timeout: float = 10) -> None:
        self._store = store
        self._secret = secret
        self._attempts = attempts
        self._first_delay = first_delay
        self._client = httpx.AsyncClient(follow_redirects=False, timeout=timeout, trust_env=False)
        self._deliveries: set[asyncio.Task[None]] = set()

    def send(self, job_id: str, url: str, body: bytes) -> None:
        task = asyncio.create_task(self._deliver(job_id, url, body), name=f"asr-callback-{job_id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def close(self) -> None:
        for task in self._deliveries:
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        await self._client.aclose()

    async def _deliver(self, job_id: str, url: str, body: bytes) -> None:
        delay = self._first_delay
        for attempt in range(1, self._attempts + 1):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self._secret, timestamp, body),
                JOB_HEADER: job_id,
            }
            record: dict[str, object] = {"attempt": attempt, "at": datetime.datetime.now(datetime.UTC).isoformat()}
            try:
                response = await self._client.post(url, content=body, headers=headers)
                record["status"] = response.status_code
                delivered = 200 <= response.status_code < 300
            except httpx.HTTPError as e:
                record["error"] = type(e).__name__
                delivered = False
            await asyncio.to_thread(self._store.record_callback, job_id, record)
            if delivered:
                return
            if attempt < self._attempts:
                await asyncio.sleep(delay)
                delay *= 2
        logger.warning("job %s: callback to %s failed %d times; given up", job_id, url, self._attempts)
