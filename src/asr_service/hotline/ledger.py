"""Tickets as ledger columns (`ledger.csv` of a batch run) and the ledger as a workbook a supervisor filters.

`ledger.xlsx`: a frozen header with filters and sized columns, 高 rows in red and rows needing review in amber, and a
second sheet counting calls by category × district."""

import csv
import datetime
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from asr_service.hotline.analysis import Ticket
from asr_service.hotline.config import CATEGORIES

TICKET_COLUMNS = [
    "call_id",
    "call_time",
    "category",
    "urgency",
    "request_type",
    "emergency_referral",
    "district",
    "location",
    "department",
    "repeat_of",
    "repeat_score",
    "ticket_needs_review",
    "summary",
    "keywords",
]
URGENT_FILL = PatternFill("solid", start_color="F8CBAD")
REVIEW_FILL = PatternFill("solid", start_color="FFE699")
HEADER_FILL = PatternFill("solid", start_color="D9E1F2")
WIDTHS = {"text": 60, "summary": 40, "location": 24, "department": 26, "file": 28, "keywords": 30, "error": 30}


def ticket_columns(ticket: Ticket | None) -> dict[str, Any]:
    if ticket is None:
        return dict.fromkeys(TICKET_COLUMNS, "")
    return {
        "call_id": ticket.call_id or "",
        "call_time": ticket.time.isoformat() if ticket.time else "",
        "category": ticket.category,
        "urgency": ticket.urgency,
        "request_type": ticket.request_type,
        "emergency_referral": ticket.emergency_referral or "",
        "district": ticket.district,
        "location": ticket.location,
        "department": ticket.department,
        "repeat_of": ";".join(ticket.repeat_of),
        "repeat_score": "" if ticket.repeat_score is None else ticket.repeat_score,
        "ticket_needs_review": ticket.needs_review,
        "summary": ticket.summary,
        "keywords": "、".join(ticket.keywords),
    }


def read_ledger(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def write_workbook(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    rows = list(rows)
    book = Workbook()
    sheet = book.active
    sheet.title = "ledger"
    sheet.append(list(columns))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
    for row in rows:
        sheet.append([_cell(row.get(column, "")) for column in columns])
        fill = (
            URGENT_FILL
            if row.get("urgency") == "高"
            else REVIEW_FILL
            if _true(row.get("needs_review")) or _true(row.get("ticket_needs_review"))
            else None
        )
        if fill is not None:
            for cell in sheet[sheet.max_row]:
                cell.fill = fill
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{max(1, len(rows) + 1)}"
    for index, column in enumerate(columns, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = WIDTHS.get(column, max(10, len(column) + 2))
    counts = book.create_sheet("category × district")
    table = Counter(
        (row.get("category", ""), row.get("district", "") or "(未知)") for row in rows if row.get("category")
    )
    districts = sorted({district for _, district in table})
    counts.append(["category", *districts, "total"])
    for cell in counts[1]:
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
    for category in CATEGORIES:
        values = [table.get((category, district), 0) for district in districts]
        counts.append([category, *values, sum(values)])
    counts.freeze_panes = "B2"
    counts.column_dimensions["A"].width = 12
    book.save(path)


def _true(value: object) -> bool:
    return value is True or str(value).lower() == "true"


def _cell(value: object) -> object:
    if isinstance(value, datetime.datetime):
        return value.replace(tzinfo=None)
    return value
