"""The audit log: one JSON line per transcription or redaction request, for the people who must later answer "who
sent which recording, when, and what came of it".

It records who asked (the user nginx authenticated, the client address), what was sent (the audio's SHA-256, size and
duration, the parameters), what answered (model, status, error code, latencies, how much personal data was masked),
and never the audio. The transcript is left out unless `ASR_AUDIT_TEXT` is set: the log then holds what citizens said.
Hotwords are counted, not copied. The file is rotated by size and kept apart from the service log, so shipping the
service log elsewhere never ships this one.
"""

import datetime
import json
import logging
import logging.handlers
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from asr_service.schemas import TranscriptionOptions, TranscriptionResponse


class AudioFacts(BaseModel):
    sha256: str
    bytes: int


class AuditRecord(BaseModel):
    time: str
    request_id: str
    method: str
    path: str
    status: int
    error_code: str | None = None
    user: str | None = None
    client: str | None = None
    audio: AudioFacts | None = None
    audio_seconds: float | None = None
    parameters: dict[str, Any] | None = None
    model: str | None = None
    transcript_id: str | None = None
    latency_ms: float
    timing: dict[str, float] | None = None
    redactions: dict[str, int] | None = None
    text: str | None = None


def audited_parameters(options: TranscriptionOptions) -> dict[str, Any]:
    """The request's options as sent, with hotwords counted rather than copied (they may name people)."""
    parameters = options.model_dump(exclude={"hotwords"})
    parameters["hotwords"] = len(options.hotwords)
    return parameters


def transcript_facts(result: TranscriptionResponse) -> dict[str, Any]:
    """What the audit line says of a transcript; `text` is dropped when it is written unless `ASR_AUDIT_TEXT`."""
    return {
        "audio_seconds": result.duration,
        "model": result.model,
        "transcript_id": result.id,
        "timing": result.timing.model_dump(),
        "redactions": result.redactions,
        "text": result.text,
    }


class AuditLog:
    """Appends JSON lines to `path`, rotated at `max_bytes` with `backups` old files kept (path.1, path.2, ...)."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger = logging.Logger(f"asr_service.audit.{path}")  # not in the logging tree: nothing propagates
        self._logger.addHandler(self._handler)

    def write(self, record: AuditRecord) -> None:
        self._logger.info(json.dumps(record.model_dump(exclude_none=True), ensure_ascii=False))

    def close(self) -> None:
        self._handler.close()


def utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
