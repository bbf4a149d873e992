"""GET /metrics in the Prometheus text format, and the middleware that counts, logs and audits every request."""

import json
import logging
import time
import uuid

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asr_service.audit import AuditLog, AuditRecord, utc_now
from asr_service.config import Settings
from asr_service.deps import BatcherDep, JobsDep, MetricsDep

router = APIRouter(tags=["health"])
access_log = logging.getLogger("asr_service.access")

COUNTED_ROUTES = frozenset(
    {"/asr", "/jobs", "/v1/audio/transcriptions", "/redact", "/analyze", "/healthz", "/readyz", "/metrics"}
)
AUDITED_ROUTES = frozenset({"/asr", "/jobs", "/v1/audio/transcriptions", "/redact", "/analyze", "/corrections"})
REQUEST_ID_HEADER = b"x-request-id"
"""nginx's $request_id when it proxies (so its log and ours correlate), else one made here; sent back to the client."""


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(registry: MetricsDep, batcher: BatcherDep, jobs: JobsDep) -> Response:
    registry.queue_depth.set(batcher.depth)  # the one place the gauges are set: read when scraped
    for status, count in (await run_in_threadpool(jobs.store.counts)).items():
        registry.jobs.labels(status).set(count)
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)


def escape_for_log(text: str) -> str:
    """Control characters, quotes and backslashes escaped (JSON style), so a path with %0a or a user name with quotes
    cannot write a forged line or field into the log."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


class AccessMiddleware:
    """Counts requests by route and status, logs who asked (the nginx-authenticated user in X-Remote-User), writes
    the audit line of transcription and redaction requests, and answers every request with its `X-Request-ID`.

    Pure ASGI (not BaseHTTPMiddleware), so it never interferes with disconnect detection or streaming.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        request_id = _clean_request_id(headers.get(REQUEST_ID_HEADER)) or uuid.uuid4().hex
        recorded = False

        def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                self._record(scope, headers, request_id, status, (time.perf_counter() - started) * 1000)

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                record()  # before the last byte leaves: a client holding its answer finds its audit line written
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            record()  # no complete answer was sent (an error before it, or the client left)

    @staticmethod
    def _record(scope: Scope, headers: dict[bytes, bytes], request_id: str, status: int, latency_ms: float) -> None:
        state = scope.get("state", {})
        route = scope["path"] if scope["path"] in COUNTED_ROUTES else "other"
        service_metrics = state.get("metrics")
        if service_metrics is not None:
            service_metrics.requests.labels(route, str(status)).inc()
        user = headers.get(b"x-remote-user", b"").decode("latin-1") or None
        client = (scope.get("client") or ("-", 0))[0]
        access_log.info(
            '%s user="%s" "%s %s" %d %.0fms',
            client,
            escape_for_log(user or "-"),
            escape_for_log(scope["method"]),
            escape_for_log(scope["path"]),
            status,
            latency_ms,
        )
        audit: AuditLog | None = state.get("audit_log")
        if audit is not None and scope["path"] in AUDITED_ROUTES and scope["method"] == "POST":
            settings: Settings = state["settings"]
            details = dict(state.get("audit_details", {}))
            if not settings.audit_text:
                details.pop("text", None)
            audit.write(
                AuditRecord(
                    time=utc_now(),
                    request_id=request_id,
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    error_code=state.get("error_code"),
                    user=user,
                    client=client,
                    latency_ms=round(latency_ms, 1),
                    **details,
                )
            )


def _clean_request_id(raw: bytes | None) -> str | None:
    """A caller's request id, if it is a short plain token (it is echoed into headers and logs)."""
    if raw is None or not 0 < len(raw) <= 64:
        return None
    text = raw.decode("latin-1")
    return text if all(c.isalnum() or c in "-_." for c in text) else None
