"""The durable job store: one table, two databases (SQLite embedded, PostgreSQL for several replicas).

SQLAlchemy Core writes the SQL for both dialects. Work is claimed with a lease: a replica sets itself as the job's
owner until `lease_expires` and renews the lease while it works; a job whose lease ran out (its replica died) can be
claimed again by anyone. Every state change after the claim is a compare-and-set on (id, owner), so a job finishes
exactly once even if two replicas raced for it. On PostgreSQL the candidate rows are picked with
`FOR UPDATE SKIP LOCKED`, so replicas do not queue up behind each other's row locks.

Calls are blocking (a few milliseconds); the runner and the routes call them from a thread.
"""

import datetime
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobPriority = Literal["interactive", "batch"]
FINISHED: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")
STATUSES: tuple[JobStatus, ...] = ("queued", "running", *FINISHED)

metadata = sa.MetaData()
jobs_table = sa.Table(
    "asr_jobs",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(32), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True, unique=True),
    sa.Column("filename", sa.String(255), nullable=True),
    sa.Column("options", sa.Text, nullable=False),
    sa.Column("callback_url", sa.Text, nullable=True),
    sa.Column("audio_sha256", sa.String(64), nullable=False),
    sa.Column("audio_bytes", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("progress", sa.Float, nullable=False, default=0.0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("result", sa.Text, nullable=True),
    sa.Column("callbacks", sa.Text, nullable=False, default="[]"),
    sa.Index("asr_jobs_claim", "status", "priority", "seq"),
)


@dataclass(frozen=True)
class JobRecord:
    id: str
    seq: int
    status: JobStatus
    priority: JobPriority
    idempotency_key: str | None
    filename: str | None
    options: dict[str, Any]
    callback_url: str | None
    audio_sha256: str
    audio_bytes: int
    created_at: datetime.datetime
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    progress: float
    attempts: int
    lease_owner: str | None
    lease_expires: datetime.datetime | None
    error: str | None
    result: dict[str, Any] | None
    callbacks: list[dict[str, Any]]


@dataclass(frozen=True)
class NewJob:
    priority: JobPriority
    options: dict[str, Any]
    audio_sha256: str
    audio_bytes: int
    filename: str | None = None
    callback_url: str | None = None
    idempotency_key: str | None = None


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobStore:
    def __init__(self, url: str) -> None:
        url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)  # psycopg 3 is the driver we ship
        self.dialect = sa.engine.make_url(url).get_backend_name()
        connect_args = {"timeout": 30} if self.dialect == "sqlite" else {}
        self._engine: Engine = sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True)
        if self.dialect == "sqlite":
            sa.event.listen(self._engine, "connect", _sqlite_pragmas)
        metadata.create_all(self._engine)

    @property
    def engine(self) -> Engine:
        """Shared with the ticket history, which lives in the same database."""
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def create(self, job: NewJob, job_id: str | None = None) -> tuple[JobRecord, bool]:
        """Insert a queued job; with an idempotency key already used, the first job instead (created=False)."""
        with self._engine.begin() as connection:
            if job.idempotency_key is not None:
                existing = self._by(connection, jobs_table.c.idempotency_key == job.idempotency_key)
                if existing is not None:
                    return existing, False
            job_id = job_id or new_job_id()
            try:
                connection.execute(
                    jobs_table.insert().values(
                        id=job_id,
                        status="queued",
                        priority=job.priority,
                        idempotency_key=job.idempotency_key,
                        filename=job.filename,
                        options=json.dumps(job.options, ensure_ascii=False),
                        callback_url=job.callback_url,
                        audio_sha256=job.audio_sha256,
                        audio_bytes=job.audio_bytes,
                        created_at=utc_now(),
                        progress=0.0,
                        attempts=0,
                        callbacks="[]",
                    )
                )
            except sa.exc.IntegrityError:
                connection.rollback()
                if job.idempotency_key is None:
                    raise
                with self._engine.begin() as retry:  # a concurrent request with the same key won
                    first = self._by(retry, jobs_table.c.idempotency_key == job.idempotency_key)
                    assert first is not None
                    return first, False
            created = self._by(connection, jobs_table.c.id == job_id)
            assert created is not None
            return created, True

    def get(self, job_id: str) -> JobRecord | None:
        with self._engine.connect() as connection:
            return self._by(connection, jobs_table.c.id == job_id)

    def page(self, status: JobStatus | None, limit: int, before_seq: int | None) -> list[JobRecord]:
        """Newest first; `before_seq` is the cursor (the last seq of the previous page)."""
        query = sa.select(jobs_table).order_by(jobs_table.c.seq.desc()).limit(limit)
        if status is not None:
            query = query.where(jobs_table.c.status == status)
        if before_seq is not None:
            query = query.where(jobs_table.c.seq < before_seq)
        with self._engine.connect() as connection:
            return [_record(row) for row in connection.execute(query).mappings()]

    def claim(self, owner: str, lease_seconds: float) -> JobRecord | None:
        """Take the next job: interactive before batch, oldest first; a running job whose lease ran out counts as
        queued (its replica died). None when there is nothing to do."""
        now = utc_now()
        claimable = sa.or_(
            jobs_table.c.status == "queued",
            sa.and_(jobs_table.c.status == "running", jobs_table.c.lease_expires < now),
        )
        order = [sa.case((jobs_table.c.priority == "interactive", 0), else_=1), jobs_table.c.seq]
        with self._engine.begin() as connection:
            candidates = sa.select(jobs_table.c.id).where(claimable).order_by(*order).limit(8)
            if self.dialect == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            for job_id in connection.execute(candidates).scalars().all():
                claimed = connection.execute(
                    jobs_table.update()
                    .where(jobs_table.c.id == job_id, claimable)
                    .values(
                        status="running",
                        lease_owner=owner,
                        lease_expires=now + datetime.timedelta(seconds=lease_seconds),
                        started_at=sa.func.coalesce(jobs_table.c.started_at, now),
                        attempts=jobs_table.c.attempts + 1,
                    )
                )
                if claimed.rowcount == 1:
                    return self._by(connection, jobs_table.c.id == job_id)
        return None

    def renew(self, job_id: str, owner: str, lease_seconds: float, progress: float) -> JobStatus | None:
        """Extend the lease and record progress; returns the job's status (a cancelled job stops its runner), or
        None if this owner lost the job."""
        with self._engine.begin() as connection:
            connection.execute(
                jobs_table.update()
                .where(jobs_table.c.id == job_id, jobs_table.c.lease_owner == owner, jobs_table.c.status == "running")
                .values(lease_expires=utc_now() + datetime.timedelta(seconds=lease_seconds), progress=progress)
            )
            row = connection.execute(
                sa.select(jobs_table.c.status, jobs_table.c.lease_owner).where(jobs_table.c.id == job_id)
            ).first()
        if row is None or row.lease_owner != owner:
            return None
        return row.status

    def finish(
        self, job_id: str, owner: str, status: JobStatus, result: dict[str, Any] | None, error: str | None
    ) -> bool:
        """Record the outcome, only if this owner still holds the job: exactly once."""
        with self._engine.begin() as connection:
            done = connection.execute(
                jobs_table.update()
                .where(jobs_table.c.id == job_id, jobs_table.c.lease_owner == owner, jobs_table.c.status == "running")
                .values(
                    status=status,
                    finished_at=utc_now(),
                    progress=1.0 if status == "succeeded" else jobs_table.c.progress,
                    result=json.dumps(result, ensure_ascii=False) if result is not None else None,
                    error=error,
                    lease_owner=None,
                    lease_expires=None,
                )
            )
        return done.rowcount == 1

    def release(self, owner: str, job_id: str | None = None) -> int:
        """Put this owner's running jobs (or one of them) back in the queue, so another slot, replica or the next
        start takes them at once."""
        condition = sa.and_(jobs_table.c.lease_owner == owner, jobs_table.c.status == "running")
        if job_id is not None:
            condition = sa.and_(condition, jobs_table.c.id == job_id)
        with self._engine.begin() as connection:
            return connection.execute(
                jobs_table.update().where(condition).values(status="queued", lease_owner=None, lease_expires=None)
            ).rowcount

    def requeue_running(self) -> int:
        """Every running job back in the queue: for SQLite at start, where this process is the only replica, so a
        running job's owner died with the previous process and need not be waited out."""
        with self._engine.begin() as connection:
            return connection.execute(
                jobs_table.update()
                .where(jobs_table.c.status == "running")
                .values(status="queued", lease_owner=None, lease_expires=None)
            ).rowcount

    def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a queued or running job (its runner notices at its next lease renewal)."""
        with self._engine.begin() as connection:
            connection.execute(
                jobs_table.update()
                .where(jobs_table.c.id == job_id, jobs_table.c.status.in_(["queued", "running"]))
                .values(status="cancelled", finished_at=utc_now(), lease_owner=None, lease_expires=None)
            )
            return self._by(connection, jobs_table.c.id == job_id)

    def delete(self, job_id: str) -> bool:
        with self._engine.begin() as connection:
            return connection.execute(jobs_table.delete().where(jobs_table.c.id == job_id)).rowcount == 1

    def record_callback(self, job_id: str, attempt: dict[str, Any]) -> None:
        with self._engine.begin() as connection:
            current = connection.execute(sa.select(jobs_table.c.callbacks).where(jobs_table.c.id == job_id)).scalar()
            if current is None:
                return
            attempts = [*json.loads(current), attempt]
            connection.execute(
                jobs_table.update().where(jobs_table.c.id == job_id).values(callbacks=json.dumps(attempts))
            )

    def counts(self) -> dict[str, int]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                sa.select(jobs_table.c.status, sa.func.count()).group_by(jobs_table.c.status)
            ).all()
        return {status: 0 for status in STATUSES} | {row[0]: int(row[1]) for row in rows}

    def purge_finished(self, cutoff: datetime.datetime) -> int:
        """Delete jobs (and with them their results) that ended before `cutoff`: retention."""
        with self._engine.begin() as connection:
            return connection.execute(
                jobs_table.delete().where(jobs_table.c.status.in_(FINISHED), jobs_table.c.finished_at < cutoff)
            ).rowcount

    @staticmethod
    def _by(connection: Connection, condition: sa.ColumnElement[bool]) -> JobRecord | None:
        row = connection.execute(sa.select(jobs_table).where(condition)).mappings().first()
        return _record(row) if row is not None else None


def _record(row: sa.RowMapping) -> JobRecord:
    values = dict(row)
    for column in ("created_at", "started_at", "finished_at", "lease_expires"):
        if values[column] is not None and values[column].tzinfo is None:  # SQLite keeps no zone; we store UTC
            values[column] = values[column].replace(tzinfo=datetime.UTC)
    values["options"] = json.loads(values["options"])
    values["result"] = json.loads(values["result"]) if values["result"] else None
    values["callbacks"] = json.loads(values["callbacks"] or "[]")
    return JobRecord(**values)


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    """WAL: readers (status polls) never wait for the writer; a crash loses no committed job."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
