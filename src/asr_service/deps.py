"""Typed dependencies: the long-lived objects the lifespan created, handed to routes."""

from typing import Annotated, TypedDict

from fastapi import Depends, Request

from asr_service.audit import AuditLog
from asr_service.batching import Batcher
from asr_service.config import Settings
from asr_service.jobs.service import Jobs
from asr_service.jobs.tickets import TicketBook
from asr_service.metrics import ServiceMetrics
from asr_service.output_folder import OutputFolder
from asr_service.transcription import Transcriber


class AppState(TypedDict):
    settings: Settings
    metrics: ServiceMetrics
    batcher: Batcher
    transcriber: Transcriber
    audit_log: AuditLog | None
    jobs: Jobs
    output_folder: OutputFolder | None
    tickets: TicketBook


def get_settings(request: Request) -> Settings:
    return request.state.settings


def get_metrics(request: Request) -> ServiceMetrics:
    return request.state.metrics


def get_batcher(request: Request) -> Batcher:
    return request.state.batcher


def get_transcriber(request: Request) -> Transcriber:
    return request.state.transcriber


def get_jobs(request: Request) -> Jobs:
    return request.state.jobs


def get_tickets(request: Request) -> TicketBook:
    return request.state.tickets


def get_output_folder(request: Request) -> OutputFolder | None:
    return request.state.output_folder


SettingsDep = Annotated[Settings, Depends(get_settings)]
JobsDep = Annotated[Jobs, Depends(get_jobs)]
TicketsDep = Annotated[TicketBook, Depends(get_tickets)]
OutputFolderDep = Annotated[OutputFolder | None, Depends(get_output_folder)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
BatcherDep = Annotated[Batcher, Depends(get_batcher)]
TranscriberDep = Annotated[Transcriber, Depends(get_transcriber)]
