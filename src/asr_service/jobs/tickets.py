"""Filed tickets: the history repeat detection reads, in the job store's database (SQLite, or PostgreSQL shared by
replicas), and the one place that analyses a call and records it."""

import datetime
import json
import threading
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from asr_service.hotline.analysis import Analyzer, Ticket, as_aware
from asr_service.hotline.repeats import PastCall
from asr_service.jobs.store import metadata, utc_now

tickets_table = sa.Table(
    "hotline_tickets",
    metadata,
    sa.Column("call_id", sa.String(200), primary_key=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("district", sa.String(32), nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("problems", sa.Text, nullable=False),
    sa.Column("repeat_of", sa.Text, nullable=False),
    sa.Column("speaker_text", sa.Text, nullable=False),
    sa.Column("ticket", sa.Text, nullable=False),
)


class TicketBook:
    """Analyses calls against the tickets filed before them and files them (a call analysed again replaces its
    ticket). Blocking: call from a thread."""

    def __init__(self, engine: Engine, analyzer: Analyzer):
        self._engine = engine
        self.analyzer = analyzer
        self._lock = threading.Lock()  # analyse-then-file is one step per replica, so a chain is never split
        tickets_table.create(engine, checkfirst=True)

    def file(self, text: str, call_id: str | None, time: datetime.datetime | None, record: bool = True) -> Ticket:
        call_id = call_id or uuid.uuid4().hex
        time = as_aware(time or utc_now())
        with self._lock:
            history = self.history(time - datetime.timedelta(days=self.analyzer.repeat_window_days), time)
            ticket = self.analyzer.analyze(text, call_id=call_id, time=time, history=history)
            if record:
                self.save(ticket)
        return ticket

    def history(self, since: datetime.datetime, until: datetime.datetime) -> list[PastCall]:
        query = sa.select(tickets_table).where(tickets_table.c.time >= since, tickets_table.c.time <= until)
        with self._engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            PastCall(
                call_id=row["call_id"],
                time=as_aware(row["time"]),
                location=row["location"],
                district=row["district"],
                problems=frozenset(json.loads(row["problems"])),
                repeat_of=tuple(json.loads(row["repeat_of"])),
                text=row["speaker_text"],
            )
            for row in rows
        ]

    def save(self, ticket: Ticket) -> None:
        assert ticket.call_id is not None and ticket.time is not None
        values = {
            "time": as_aware(ticket.time),
            "district": ticket.district,
            "location": ticket.location,
            "problems": json.dumps(ticket.problems, ensure_ascii=False),
            "repeat_of": json.dumps(ticket.repeat_of),
            "speaker_text": ticket.speaker_text,
            "ticket": ticket.model_dump_json(),
        }
        with self._engine.begin() as connection:
            updated = connection.execute(
                tickets_table.update().where(tickets_table.c.call_id == ticket.call_id).values(**values)
            ).rowcount
            if not updated:
                connection.execute(tickets_table.insert().values(call_id=ticket.call_id, **values))

    def get(self, call_id: str) -> Ticket | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                sa.select(tickets_table.c.ticket).where(tickets_table.c.call_id == call_id)
            ).scalar_one_or_none()
        return Ticket.model_validate_json(row) if row else None

    def purge_before(self, cutoff: datetime.datetime) -> int:
        """Retention: tickets of calls made before `cutoff` (they hold what citizens said)."""
        with self._engine.begin() as connection:
            return connection.execute(tickets_table.delete().where(tickets_table.c.time < cutoff)).rowcount
