"""GET /metrics in the Prometheus text format, and the middleware that counts and logs every request."""

import json
import logging
import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asr_service.deps import BatcherDep, MetricsDep

router = APIRouter(tags=["health"])
access_log = logging.getLogger("asr_service.access")

COUNTED_ROUTES = frozenset({"/asr", "/v1/audio/transcriptions", "/healthz", "/readyz", "/metrics"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(registry: MetricsDep, batcher: BatcherDep) -> Response:
    registry.queue_depth.set(batcher.depth)  # the one place the gauge is set: read when scraped
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)


def escape_for_log(text: str) -> str:
    """Control characters, quotes and backslashes escaped (JSON style), so a path with %0a or a user name with quotes
    cannot write a forged line or field into the log."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


class AccessMiddleware:
    """Counts requests by route and status and logs who asked (the nginx-authenticated user in X-Remote-User).

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

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope["path"] if scope["path"] in COUNTED_ROUTES else "other"
            service_metrics = scope.get("state", {}).get("metrics")
            if service_metrics is not None:
                service_metrics.requests.labels(route, str(status)).inc()
            headers = dict(scope.get("headers") or [])
            client = scope.get("client") or ("-", 0)
            access_log.info(
                '%s user="%s" "%s %s" %d %.0fms',
                client[0],
                escape_for_log(headers.get(b"x-remote-user", b"-").decode("latin-1") or "-"),
                escape_for_log(scope["method"]),
                escape_for_log(scope["path"]),
                status,
                (time.perf_counter() - started) * 1000,
            )
