"""What the /jobs routes need, created together in the lifespan."""

from dataclasses import dataclass

from asr_service.jobs.audio_files import AudioFiles
from asr_service.jobs.callbacks import CallbackSender
from asr_service.jobs.corrections import CorrectionBook
from asr_service.jobs.runner import JobRunner
from asr_service.jobs.store import JobStore


@dataclass(frozen=True)
class Jobs:
    store: JobStore
    files: AudioFiles
    runner: JobRunner
    callbacks: CallbackSender | None
    """None while callbacks are off (no allowed hosts)."""
    corrections: CorrectionBook
