"""What supervisors read: the batch ledger with ticket columns, ledger.xlsx, and the weekly HTML report, looked at in
a real headless Chromium."""

import datetime
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hotline_set import CALLS
from openpyxl import load_workbook
from PIL import Image, ImageChops

from asr_service.hotline.analysis import Analyzer
from asr_service.hotline.evaluation import run_calls
from asr_service.hotline.ledger import TICKET_COLUMNS, read_ledger, ticket_columns, write_workbook
from asr_service.hotline.report import write_report

REPO = Path(__file__).resolve().parents[1]
AUDIO = REPO.parent / "shared" / "audio"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def ledger_rows() -> list[dict[str, str]]:
    """The labelled calls filed as tickets, as a batch run's ledger holds them."""
    rows = []
    for labelled, ticket in run_calls(CALLS, Analyzer.load()):
        columns = {k: str(v) for k, v in ticket_columns(ticket).items()}
        rows.append({"file": f"{labelled['call_id']}.wav", "text": labelled["text"], **columns})
    return rows


def test_batch_analyze_adds_ticket_columns_and_a_workbook(tmp_path: Path, model_cache: Path) -> None:
    recordings = tmp_path / "calls"
    recordings.mkdir()
    shutil.copy(AUDIO / "zh_funasr_llamacpp_sample.wav", recordings / "20261116_091502_hotline.wav")
    shutil.copy(AUDIO / "zh_glmasr_example_zh.wav", recordings / "call-2026-11-17 14-30.wav")
    undated = recordings / "undated.wav"
    shutil.copy(AUDIO / "zh_wenet_aishell-BAC009S0724W0121.wav", undated)
    os.utime(undated, (datetime.datetime(2026, 11, 18, 10, 0).timestamp(),) * 2)
    out = tmp_path / "out"
    env = {**os.environ, "ASR_MODEL": "whisper-base", "ASR_CACHE_DIR": str(model_cache), "ASR_DATA_DIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "asr_service", "batch", str(recordings), "--out", str(out), "--analyze",
         "--language", "zh"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {row["file"]: row for row in read_ledger(out / "ledger.csv")}
    assert set(TICKET_COLUMNS) <= set(next(iter(rows.values())))
    dated = rows["20261116_091502_hotline.wav"]
    assert dated["call_time"] == "2026-11-16T09:15:02+08:00"
    assert dated["call_id"] == "20261116_091502_hotline.wav"
    assert dated["request_type"] == "咨询" and dated["category"]
    assert rows["call-2026-11-17 14-30.wav"]["call_time"] == "2026-11-17T14:30:00+08:00"
    assert rows["undated.wav"]["call_time"].startswith("2026-11-18")  # the file's modification time
    sheet = load_workbook(out / "ledger.xlsx").worksheets[0]
    assert [cell.value for cell in sheet[1]][: len(rows["undated.wav"])] == list(rows["undated.wav"])
    assert sheet.max_row == 4


def test_workbook_highlights_urgent_and_review_rows_and_counts_by_district(
    tmp_path: Path, ledger_rows: list[dict[str, str]]
) -> None:
    columns = ["file", "text", *TICKET_COLUMNS]
    write_workbook(tmp_path / "ledger.xlsx", columns, ledger_rows)
    book = load_workbook(tmp_path / "ledger.xlsx")
    sheet, counts = book.worksheets
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, len(columns)).column_letter}{len(ledger_rows) + 1}"
    assert sheet.column_dimensions["B"].width == 60
    urgency = columns.index("urgency") + 1
    for row in range(2, sheet.max_row + 1):
        colour = sheet.cell(row, 1).fill.start_color.rgb
        if sheet.cell(row, urgency).value == "高":
            assert colour.endswith("F8CBAD")
    assert counts.title == "category × district"
    header = [cell.value for cell in counts[1]]
    total = {row[0].value: row[-1].value for row in counts.iter_rows(min_row=2)}
    assert sum(total.values()) == len(ledger_rows) and total["市政设施"] == 13
    assert "朝阳区" in header


def test_weekly_report_is_one_file_with_every_chart_and_table(
    tmp_path: Path, ledger_rows: list[dict[str, str]]
) -> None:
    report = write_report(
        ledger_rows, tmp_path / "report.html", datetime.date(2026, 11, 9), datetime.date(2026, 11, 15)
    )
    page = report.read_text(encoding="utf-8")
    this_week = [r for r in ledger_rows if "2026-11-09" <= r["call_time"][:10] <= "2026-11-15"]
    last_week = [r for r in ledger_rows if "2026-11-02" <= r["call_time"][:10] <= "2026-11-08"]
    assert f"来电总数<b>{len(this_week)}</b>" in page
    assert f"上期 {len(last_week)}" in page
    assert page.count('src="data:image/png;base64,') == 4
    for heading in (
        "每日来电量",
        "各类别来电量",
        "诉求类型",
        "紧急程度",
        "类别 × 区",
        "重复投诉",
        "紧急来电（高）",
        "需复核的来电",
    ):
        assert heading in page
    # the lift chain, from its first call in the week before
    assert "c10（2026-11-06，高） → c11（2026-11-09，中） → c12（2026-11-12，低）" in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is installed by make test")
def test_report_renders_chinese_in_headless_chromium(tmp_path: Path, ledger_rows: list[dict[str, str]]) -> None:
    report = write_report(ledger_rows, tmp_path / "report.html", None, None)
    shot = tmp_path / "report.png"
    _screenshot(report, shot, "1366,2400")
    image = Image.open(shot).convert("L")
    assert image.size == (1366, 2400)
    assert sum(image.histogram()[:128]) > 20_000  # text, charts and tables drawn
    # Tofu (missing glyphs) draws the same box for every character; real glyphs differ from one another.
    glyphs = tmp_path / "glyphs.html"
    glyphs.write_text(
        '<html><body style="margin:0;font-size:80px;line-height:100px">'
        + "".join(f'<div style="height:100px">{c}</div>' for c in "热线周报")
        + "</body></html>",
        encoding="utf-8",
    )
    _screenshot(glyphs, tmp_path / "glyphs.png", "100,400")
    cells = [Image.open(tmp_path / "glyphs.png").convert("L").crop((0, 100 * i, 100, 100 * i + 100)) for i in range(4)]
    for a in range(4):
        for b in range(a + 1, 4):
            assert ImageChops.difference(cells[a], cells[b]).getbbox() is not None, "identical glyphs: tofu"


def _screenshot(page: Path, out: Path, size: str) -> None:
    assert CHROMIUM is not None
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={size}",
         f"--screenshot={out}", page.as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
