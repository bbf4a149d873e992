"""create_app(settings): routers, error handlers and the lifespan that owns the model and the batch worker."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from asr_service.api import asr, health, metrics, openai
from asr_service.api.metrics import AccessMiddleware
from asr_service.audio.vad import SpeechDetector
from asr_service.batching import Batcher, BatchPolicy
from asr_service.config import Settings
from asr_service.deps import AppState
from asr_service.engines.base import AsrEngine
from asr_service.engines.loader import load_engine
from asr_service.errors import install_error_handlers
from asr_service.metrics import ServiceMetrics
from asr_service.transcription import Transcriber, vad_params

logger = logging.getLogger(__name__)


def batch_policy(settings: Settings) -> BatchPolicy:
    return BatchPolicy(
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        queue_size=settings.queue_size,
        retry_after_seconds=settings.retry_after_seconds,
    )


def create_app(settings: Settings | None = None, engine: AsrEngine | None = None) -> FastAPI:
    """Build the service. `engine` replaces the configured model (tests inject failing engines this way)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[AppState]:
        service_metrics = ServiceMetrics()
        loaded = engine or await asyncio.to_thread(load_engine, settings)
        detector = await asyncio.to_thread(SpeechDetector, vad_params(settings))
        batcher = Batcher(loaded, batch_policy(settings), service_metrics)
        await batcher.start()
        logger.info("ready: model %s, batches of up to %d", loaded.model_name, settings.max_batch_size)
        try:
            yield AppState(
                settings=settings,
                metrics=service_metrics,
                batcher=batcher,
                transcriber=Transcriber(settings, detector, batcher, service_metrics),
            )
        finally:
            await batcher.stop()

    app = FastAPI(
        title="12345 hotline ASR service",
        version="0.1.0",
        description="Speech recognition for government hotline call recordings (GLM-ASR-Nano-2512, batched).",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(AccessMiddleware)
    for module in (asr, openai, health, metrics):
        app.include_router(module.router)
    return app
