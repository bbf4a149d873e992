"""Supervisors' corrections of transcripts and tickets, kept in the job store's database (SQLite or PostgreSQL).

Each correction is a row (original and corrected text, job, segment, time span, user, time), so corrections can be
exported as fine-tuning data (GET /corrections) and applied to a job's result whenever it is read: the latest
correction of each segment or ticket field wins, and the original stays recorded beside it."""

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from asr_service.hotline.analysis import as_aware
from asr_service.jobs.store import metadata, utc_now
from asr_service.schemas import TranscriptionResponse
from asr_service.text import transcript_text

CorrectedField = Literal["text", "category", "urgency", "department"]
TICKET_FIELDS: tuple[CorrectedField, ...] = ("category", "urgency", "department")

corrections_table = sa.Table(
    "asr_corrections",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(32), nullable=False, index=True),
    sa.Column("segment_id", sa.Integer, nullable=True),
    sa.Column("field", sa.String(16), nullable=False),
    sa.Column("start", sa.Float, nullable=True),
    sa.Column("end", sa.Float, nullable=True),
    sa.Column("original", sa.Text, nullable=False),
    sa.Column("corrected", sa.Text, nullable=False),
    sa.Column("user", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
)


@dataclass(frozen=True)
class Correction:
    id: int
    job_id: str
    segment_id: int | None
    field: CorrectedField
    start: float | None
    end: float | None
    original: str
    corrected: str
    user: str
    created_at: datetime.datetime


class CorrectionBook:
    """Blocking: call from a thread."""

    def __init__(self, engine: Engine):
        self._engine = engine
        corrections_table.create(engine, checkfirst=True)

    def add(
        self,
        job_id: str,
        segment_id: int | None,
        field: CorrectedField,
        span: tuple[float, float] | None,
        original: str,
        corrected: str,
        user: str,
    ) -> Correction:
        values = {
            "job_id": job_id,
            "segment_id": segment_id,
            "field": field,
            "start": span[0] if span else None,
            "end": span[1] if span else None,
            "original": original,
            "corrected": corrected,
            "user": user,
            "created_at": utc_now(),
        }
        with self._engine.begin() as connection:
            row_id = connection.execute(corrections_table.insert().values(**values)).inserted_primary_key[0]
        return Correction(id=row_id, **values)

    def find(
        self, job_id: str | None = None, since: datetime.datetime | None = None, limit: int = 10_000
    ) -> list[Correction]:
        query = sa.select(corrections_table).order_by(corrections_table.c.id).limit(limit)
        if job_id is not None:
            query = query.where(corrections_table.c.job_id == job_id)
        if since is not None:
            query = query.where(corrections_table.c.created_at > since)
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [_correction(row) for row in rows]

    def for_jobs(self, job_ids: Sequence[str]) -> dict[str, list[Correction]]:
        """The corrections of several jobs in one query (a page of the job list)."""
        if not job_ids:
            return {}
        query = sa.select(corrections_table).where(corrections_table.c.job_id.in_(job_ids))
        with self._engine.connect() as connection:
            rows = connection.execute(query.order_by(corrections_table.c.id)).mappings().all()
        found: dict[str, list[Correction]] = {}
        for row in rows:
            found.setdefault(row["job_id"], []).append(_correction(row))
        return found

    def delete_job(self, job_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(corrections_table.delete().where(corrections_table.c.job_id == job_id))

    def purge_before(self, cutoff: datetime.datetime) -> int:
        with self._engine.begin() as connection:
            return connection.execute(
                corrections_table.delete().where(corrections_table.c.created_at < cutoff)
            ).rowcount


def _correction(row: sa.RowMapping) -> Correction:
    return Correction(**{**row, "created_at": as_aware(row["created_at"])})


def apply_corrections(result: TranscriptionResponse, corrections: Sequence[Correction]) -> TranscriptionResponse:
    """The result as supervisors corrected it: the latest correction of each segment and ticket field wins."""
    if not corrections:
        return result
    latest_text = {c.segment_id: c for c in corrections if c.field == "text" and c.segment_id is not None}
    segments = [
        segment.model_copy(update={"text": fix.corrected, "original_text": segment.text, "corrected_by": fix.user})
        if (fix := latest_text.get(segment.id)) is not None
        else segment
        for segment in result.segments
    ]
    update: dict[str, object] = {"segments": segments}
    if latest_text:
        update["text"] = transcript_text(segments, result.channel_mode)
    ticket_fixes = {c.field: c for c in corrections if c.field in TICKET_FIELDS}
    if result.ticket is not None and ticket_fixes:
        changes = {field: fix.corrected for field, fix in ticket_fixes.items()}
        by = sorted({fix.user for fix in ticket_fixes.values()})
        update["ticket"] = result.ticket.model_copy(update={**changes, "corrected_by": ", ".join(by)})
    return result.model_copy(update=update)
