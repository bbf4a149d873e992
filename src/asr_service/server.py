"""The uvicorn server around the app: connection limits, the SIGTERM drain, and a thread runner for tests.

`asr-service serve` and the tests' `serve_in_thread` build the server the same way, so the limits the tests probe are
the ones in production.
"""

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from asr_service.app import create_app
from asr_service.batching import Batcher
from asr_service.config import Settings
from asr_service.engines.base import AsrEngine

logger = logging.getLogger(__name__)

FINAL_SHUTDOWN_SECONDS = 5
"""After the drain, how long uvicorn waits for responses still being written before it closes connections."""


class HeadTimeoutH11Protocol(H11Protocol):
    """h11 with a deadline for the request head: uvicorn times out idle keep-alive connections, but not a client
    that sends its headers a byte at a time (slowloris), which would hold a connection for ever."""

    head_timeout_seconds: float = 30

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.cycle is not self._cycle_at_arm:  # a new request's head was parsed
            self._disarm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.our_state is h11.IDLE:  # keep-alive: the next request's head is due in time too
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._cycle_at_arm = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        timer: asyncio.TimerHandle | None = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        if not self.transport.is_closing():
            logger.info(
                "closing a connection from %s: no complete request head within %.0f s",
                self.client,
                self.head_timeout_seconds,
            )
            self.transport.close()


class DrainingServer(uvicorn.Server):
    """SIGTERM drains before it stops: the listener stays open, /readyz and new requests answer 503, admitted
    requests finish (within the grace period), then the server exits with status 0. Ctrl-C, or a second SIGTERM,
    stops at once."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, grace_seconds: float) -> None:
        super().__init__(config)
        self._app = app
        self._grace_seconds = grace_seconds
        self._draining = False

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        batcher = getattr(self._app.state, "batcher", None)
        if sig != signal.SIGTERM or batcher is None or self._draining:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        asyncio.get_running_loop().call_soon_threadsafe(self._start_drain, batcher)

    def _start_drain(self, batcher: Batcher) -> None:
        task = asyncio.create_task(self._drain(batcher), name="asr-drain")
        self._drain_task = task  # keep a reference: the loop holds tasks weakly

    async def _drain(self, batcher: Batcher) -> None:
        logger.info("SIGTERM: draining for up to %.0f s", self._grace_seconds)
        batcher.begin_drain()
        started = time.monotonic()
        if await batcher.wait_drained(self._grace_seconds):
            logger.info("drained in %.1f s; exiting", time.monotonic() - started)
        else:
            logger.warning("grace period of %.0f s over with requests still in progress; exiting", self._grace_seconds)
        self.should_exit = True  # not handle_exit: uvicorn would re-raise SIGTERM and the exit status would be 143


def uvicorn_config(app: FastAPI, settings: Settings, **options: object) -> uvicorn.Config:
    """Timeouts and size limits that hold even when the service is reached without nginx."""
    protocol = type(
        "HeadTimeoutH11Protocol", (HeadTimeoutH11Protocol,), {"head_timeout_seconds": settings.header_timeout_seconds}
    )
    return uvicorn.Config(
        app,
        http=protocol,
        h11_max_incomplete_event_size=settings.max_header_kb * 1024,
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=FINAL_SHUTDOWN_SECONDS,
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        access_log=False,  # asr_service.access logs every request, with the authenticated user
        **options,  # type: ignore[arg-type]
    )


def run_service(settings: Settings, host: str, port: int) -> None:
    """`asr-service serve`: the service in the foreground until SIGTERM (drained) or Ctrl-C."""
    app = create_app(settings)
    config = uvicorn_config(app, settings, host=host, port=port, log_level=settings.log_level.lower())
    DrainingServer(config, app, settings.shutdown_grace_seconds).run()


SERVER_THREAD = "asr-service-server"
"""The name of `serve_in_thread`'s thread, which runs the event loop (benchmarks read its CPU time)."""


@contextlib.contextmanager
def serve_in_thread(settings: Settings, engine: AsrEngine | None = None, start_timeout: float = 300) -> Iterator[str]:
    """Start the service on a free loopback port, yield its base URL, and stop it afterwards."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(settings, engine)
    server = DrainingServer(uvicorn_config(app, settings, log_level="warning"), app, settings.shutdown_grace_seconds)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=SERVER_THREAD, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
