"""Run the real app in a real uvicorn server on a background thread (tests and benchmarks)."""

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from asr_service.app import create_app
from asr_service.config import Settings
from asr_service.engines.base import AsrEngine


@contextlib.contextmanager
def serve_in_thread(settings: Settings, engine: AsrEngine | None = None, start_timeout: float = 300) -> Iterator[str]:
    """Start the service on a free loopback port, yield its base URL, and stop it afterwards."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, engine),
        log_level="warning",
        lifespan="on",
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
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
