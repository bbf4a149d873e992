"""create_app(settings): routers, error handlers and the lifespan that owns the model and the batch worker."""

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from asr_service.api import analyze, asr, corrections, health, jobs, metrics, openai, redact
from asr_service.api.metrics import AccessMiddleware
from asr_service.audio.vad import SileroModel
from asr_service.audit import AuditLog
from asr_service.batching import Batcher, BatchPolicy
from asr_service.config import Settings
from asr_service.deps import AppState
from asr_service.engines.base import AsrEngine, EngineProfile
from asr_service.engines.loader import load_engine
from asr_service.errors import install_error_handlers
from asr_service.hotline.analysis import Analyzer
from asr_service.jobs.audio_files import AudioFiles
from asr_service.jobs.callbacks import CallbackSender
from asr_service.jobs.corrections import CorrectionBook
from asr_service.jobs.runner import JobRunner
from asr_service.jobs.schemas import job_view
from asr_service.jobs.service import Jobs
from asr_service.jobs.store import JobRecord, JobStore
from asr_service.jobs.tickets import TicketBook
from asr_service.metrics import ServiceMetrics
from asr_service.output_folder import OutputFolder
from asr_service.retention import sweep_forever
from asr_service.schemas import TranscriptionResponse
from asr_service.transcription import Transcriber, vad_params
from asr_service.web import install_web_console

logger = logging.getLogger(__name__)


def batch_policy(settings: Settings, profile: EngineProfile) -> BatchPolicy:
    return BatchPolicy(
        max_batch_size=settings.max_batch_size or profile.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        queue_size=settings.queue_size,
        retry_after_seconds=settings.retry_after_seconds,
        engine_timeout_seconds=settings.engine_timeout_seconds,
        oom_cooldown_seconds=settings.oom_cooldown_seconds,
        max_queue_wait_seconds=settings.max_queue_wait_seconds,
        length_window_batches=settings.length_window_batches,
    )


SWAGGER_ASSETS = "/docs/assets"


def install_offline_docs(app: FastAPI) -> None:
    """/docs with Swagger UI served from the `swagger-ui-bundle` wheel (Apache-2.0), so it works air-gapped."""
    app.mount(SWAGGER_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_ASSETS}/favicon-32x32.png",
        )


def open_jobs(settings: Settings, transcriber: Transcriber, output_folder: OutputFolder | None) -> Jobs:
    """The job store (SQLite under the data folder unless a database URL is set), stored audio, and the runner."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = JobStore(settings.jobs_url)
    if store.dialect == "sqlite" and (resumed := store.requeue_running()):
        logger.info("resuming %d job(s) that were running when the service last stopped", resumed)
    files = AudioFiles(settings.data_dir)

    callbacks = (
        CallbackSender(
            store, settings.callback_signing_secret(), settings.callback_attempts, settings.callback_first_delay_seconds
        )
        if settings.callback_hosts
        else None
    )

    async def save_transcript(job: JobRecord, result: TranscriptionResponse) -> None:
        assert output_folder is not None  # in the folder of the day it was submitted: a re-run writes the same file
        await asyncio.to_thread(output_folder.save, result, job.filename, job.created_at.astimezone())

    async def job_ended(job: JobRecord) -> None:
        if callbacks is not None and job.callback_url:
            callbacks.send(job.id, job.callback_url, job_view(job, with_result=True).model_dump_json().encode())

    runner = JobRunner(
        store,
        files,
        transcriber,
        slots=settings.job_slots,
        lease_seconds=settings.job_lease_seconds,
        poll_seconds=settings.job_poll_seconds,
        keep_audio=settings.keep_audio,
        on_end=job_ended,
        on_result=save_transcript if output_folder is not None else None,  # else no lease check before finishing
    )
    return Jobs(store, files, runner, callbacks, CorrectionBook(store.engine))


def open_ticket_book(settings: Settings, store: JobStore) -> TicketBook:
    """The hotline analysis (configuration and classifier loaded once) over the job store's database."""
    analyzer = Analyzer.load(settings.hotline_config, settings.hotline_model, settings.repeat_window_days)
    return TicketBook(store.engine, analyzer)


def create_app(settings: Settings | None = None, engine: AsrEngine | None = None) -> FastAPI:
    """Build the service. `engine` replaces the configured model (tests inject failing engines this way)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[AppState]:
        service_metrics = ServiceMetrics()
        loaded = engine or await asyncio.to_thread(load_engine, settings)
        vad = await asyncio.to_thread(SileroModel)
        policy = batch_policy(settings, loaded.profile)
        params = vad_params(settings, loaded.profile)
        preprocessing = ThreadPoolExecutor(settings.preprocess_threads, thread_name_prefix="asr-preprocess")
        batcher = Batcher(loaded, policy, service_metrics)
        await batcher.start()
        audit_log = (
            AuditLog(settings.audit_log, int(settings.audit_max_mb * 1024 * 1024), settings.audit_backups)
            if settings.audit_log
            else None
        )
        output_folder = OutputFolder(settings.output_dir, settings.saved_formats) if settings.output_dir else None
        transcriber = Transcriber(settings, params, vad, preprocessing, batcher, service_metrics)
        job_service = await asyncio.to_thread(open_jobs, settings, transcriber, output_folder)
        tickets = await asyncio.to_thread(open_ticket_book, settings, job_service.store)
        transcriber.tickets = tickets
        job_service.runner.start()
        retention = (
            asyncio.create_task(
                sweep_forever(
                    settings.data_dir,
                    settings.retention_days,
                    [settings.output_dir] if settings.output_dir else [],
                    lambda cutoff: (
                        job_service.store.purge_finished(cutoff)
                        + tickets.purge_before(cutoff)
                        + job_service.corrections.purge_before(cutoff)
                    ),
                ),
                name="asr-retention",
            )
            if settings.retention_days
            else None
        )
        app.state.batcher = batcher  # for the server's SIGTERM drain, which runs outside any request
        logger.info(
            "ready: model %s, batches of up to %d, segments of up to %.0f s, %d preprocessing threads",
            loaded.model_name,
            policy.max_batch_size,
            params.max_segment_seconds,
            settings.preprocess_threads,
        )
        try:
            yield AppState(
                settings=settings,
                metrics=service_metrics,
                batcher=batcher,
                transcriber=transcriber,
                audit_log=audit_log,
                jobs=job_service,
                output_folder=output_folder,
                tickets=tickets,
            )
        finally:
            if retention is not None:
                retention.cancel()
            await job_service.runner.stop()
            if job_service.callbacks is not None:
                await job_service.callbacks.close()
            await batcher.stop()
            job_service.store.close()
            if audit_log is not None:
                audit_log.close()
            preprocessing.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="12345 hotline ASR service",
        version="0.1.0",
        description="Speech recognition for government hotline call recordings (GLM-ASR-Nano-2512, batched).",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN; the hotline network has no internet
        redoc_url=None,
    )
    install_offline_docs(app)
    install_web_console(app)
    install_error_handlers(app)
    app.add_middleware(AccessMiddleware)
    for module in (asr, jobs, corrections, analyze, openai, redact, health, metrics):
        app.include_router(module.router)
    return app
