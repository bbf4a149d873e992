"""The weekly report: one self-contained HTML file (charts inlined as PNG) a supervisor reads or mails on.

Built from the ledger's rows: totals against the previous period of the same length, calls per day and per
category, request types, urgency mix, a category × district heat table, the top repeat chains, the 高 calls and the
calls needing review. Charts use a CJK font installed on the machine (Debian's fonts-noto-cjk), so Chinese labels
render; nothing is fetched."""

import base64
import datetime
import html
import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from asr_service.hotline.config import CATEGORIES  # noqa: E402

CJK_FONT_GLOBS = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "/usr/share/fonts/**/*CJK*.tt[cf]")
URGENCIES = ("高", "中", "低")
REQUEST_TYPES = ("咨询", "求助", "投诉", "举报", "建议", "表扬")

Row = dict[str, str]


class NoCjkFontError(RuntimeError):
    pass


def use_cjk_font() -> str:
    """Register a CJK font with matplotlib (once) and return its family name."""
    for pattern in CJK_FONT_GLOBS:
        for path in sorted(Path("/").glob(pattern.lstrip("/"))):
            font_manager.fontManager.addfont(str(path))
            name = font_manager.FontProperties(fname=str(path)).get_name()
            plt.rcParams["font.family"] = [name]
            plt.rcParams["axes.unicode_minus"] = False
            return name
    raise NoCjkFontError("no CJK font found: install fonts-noto-cjk (make test installs it)")


def _day(row: Row) -> datetime.date | None:
    try:
        return datetime.datetime.fromisoformat(row.get("call_time", "")).date()
    except ValueError:
        return None


def select_period(rows: Sequence[Row], start: datetime.date, end: datetime.date) -> list[Row]:
    return [row for row in rows if (day := _day(row)) is not None and start <= day <= end]


def _png(figure: plt.Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _bar(title: str, labels: Sequence[str], values: Sequence[int], color: str = "#4472C4") -> str:
    figure, axes = plt.subplots(figsize=(7, 3.2))
    axes.bar(list(labels), list(values), color=color)
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=30)
    for index, value in enumerate(values):
        axes.annotate(str(value), (index, value), ha="center", va="bottom", fontsize=8)
    return _png(figure)


def _pie(title: str, counts: Counter[str], order: Sequence[str], colors: Sequence[str]) -> str:
    labels = [label for label in order if counts.get(label)]
    figure, axes = plt.subplots(figsize=(4, 3.2))
    if labels:
        axes.pie([counts[label] for label in labels], labels=labels, autopct="%1.0f%%", colors=colors[: len(labels)])
    axes.set_title(title)
    return _png(figure)


def _change(now: int, before: int) -> str:
    if not before:
        return "（上期无数据）"
    delta = (now - before) / before * 100
    return f"（较上期 {'+' if delta >= 0 else ''}{delta:.0f}%，上期 {before}）"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _heat_table(rows: Sequence[Row]) -> str:
    counts = Counter((row.get("category", ""), row.get("district") or "（未知）") for row in rows)
    districts = sorted({district for _, district in counts})
    peak = max(counts.values(), default=1)
    head = "<th>类别 \\ 区</th>" + "".join(f"<th>{html.escape(d)}</th>" for d in districts)
    lines = []
    for category in CATEGORIES:
        cells = []
        for district in districts:
            value = counts.get((category, district), 0)
            alpha = value / peak if peak else 0
            cells.append(f'<td style="background: rgba(192,0,0,{alpha:.2f})">{value or ""}</td>')
        lines.append(f"<tr><th>{category}</th>{''.join(cells)}</tr>")
    return f'<table class="heat"><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>'


def _repeat_chains(rows: Sequence[Row], earlier: Sequence[Row], top: int = 10) -> list[list[Row]]:
    """Chains with a call in the period (the root call first, also when it came before the period), longest first."""
    by_id = {row.get("call_id", ""): row for row in (*earlier, *rows) if row.get("call_id")}
    chains: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        earlier = [c for c in (row.get("repeat_of") or "").split(";") if c]
        if earlier:
            root = earlier[0]
            if not chains[root] and root in by_id:
                chains[root].append(by_id[root])
            chains[root].append(row)
    return sorted(chains.values(), key=len, reverse=True)[:top]


def build_report(
    rows: Sequence[Row], start: datetime.date, end: datetime.date, previous: Sequence[Row], earlier: Sequence[Row] = ()
) -> str:
    """The report's HTML for the calls of [start, end] (`previous`: the period before, for the changes; `earlier`:
    any earlier calls, where repeat chains start)."""
    use_cjk_font()
    days = [start + datetime.timedelta(days=i) for i in range((end - start).days + 1)]
    per_day = Counter(_day(row) for row in rows)
    categories = Counter(row.get("category", "") for row in rows)
    previous_categories = Counter(row.get("category", "") for row in previous)
    urgencies = Counter(row.get("urgency", "") for row in rows)
    types = Counter(row.get("request_type", "") for row in rows)
    repeats = sum(1 for row in rows if row.get("repeat_of"))
    urgent = [row for row in rows if row.get("urgency") == "高"]
    review = [row for row in rows if str(row.get("ticket_needs_review")).lower() == "true"]
    charts = {
        "每日来电量": _bar("每日来电量", [d.strftime("%m-%d") for d in days], [per_day.get(d, 0) for d in days]),
        "各类别来电量": _bar("各类别来电量", list(CATEGORIES), [categories.get(c, 0) for c in CATEGORIES], "#ED7D31"),
        "诉求类型": _bar("诉求类型", list(REQUEST_TYPES), [types.get(t, 0) for t in REQUEST_TYPES], "#70AD47"),
        "紧急程度": _pie("紧急程度", urgencies, URGENCIES, ["#C00000", "#FFC000", "#A9D18E"]),
    }
    images = "".join(
        f'<figure><img alt="{html.escape(name)}" src="{src}"><figcaption>{html.escape(name)}</figcaption></figure>'
        for name, src in charts.items()
    )
    category_rows = [
        (c, categories.get(c, 0), previous_categories.get(c, 0), categories.get(c, 0) - previous_categories.get(c, 0))
        for c in CATEGORIES
    ]
    chain_rows = [
        (
            len(chain),
            chain[0].get("location", ""),
            chain[0].get("category", ""),
            " → ".join(
                f"{r.get('call_id', '')}（{(r.get('call_time') or '')[:10]}，{r.get('urgency', '')}）" for r in chain
            ),
        )
        for chain in _repeat_chains(rows, earlier)
    ]

    def listing(selected: Sequence[Row]) -> str:
        return _table(
            ["来电", "时间", "类别", "紧急", "转警", "区", "地点", "摘要"],
            [
                (
                    r.get("call_id") or r.get("file", ""),
                    (r.get("call_time") or "")[:16],
                    r.get("category", ""),
                    r.get("urgency", ""),
                    r.get("emergency_referral", ""),
                    r.get("district", ""),
                    r.get("location", ""),
                    r.get("summary", ""),
                )
                for r in selected
            ],
        )

    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>12345 热线周报 {start} 至 {end}</title>
<style>
body {{ font-family: "Noto Sans CJK SC", "Noto Sans CJK JP", sans-serif; margin: 24px; max-width: 1200px; }}
h1 {{ font-size: 24px; }} h2 {{ font-size: 18px; border-bottom: 2px solid #4472C4; padding-bottom: 4px; }}
.totals {{ display: flex; gap: 16px; flex-wrap: wrap; }}
.totals div {{ background: #F2F2F2; padding: 12px 16px; border-radius: 6px; min-width: 150px; }}
.totals b {{ font-size: 26px; display: block; }}
figure {{ display: inline-block; margin: 8px; }} img {{ max-width: 560px; }}
table {{ border-collapse: collapse; margin: 8px 0; font-size: 13px; }}
th, td {{ border: 1px solid #BFBFBF; padding: 4px 8px; text-align: left; vertical-align: top; }}
thead th {{ background: #D9E1F2; }} table.heat td {{ text-align: center; min-width: 36px; }}
</style></head><body>
<h1>12345 热线周报：{start} 至 {end}</h1>
<section class="totals">
<div>来电总数<b>{len(rows)}</b>{_change(len(rows), len(previous))}</div>
<div>紧急（高）<b>{len(urgent)}</b></div>
<div>重复来电<b>{repeats}</b></div>
<div>需复核<b>{len(review)}</b></div>
</section>
<h2>图表</h2>{images}
<h2>各类别来电（与上期比较）</h2>{_table(["类别", "本期", "上期", "变化"], category_rows)}
<h2>类别 × 区</h2>{_heat_table(rows)}
<h2>重复投诉（前 10 条链）</h2>{_table(["次数", "地点", "类别", "来电链"], chain_rows)}
<h2>紧急来电（高）</h2>{listing(urgent)}
<h2>需复核的来电</h2>{listing(review)}
<p>生成时间：{datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}。数据来源：ledger.csv。</p>
</body></html>
"""


def write_report(ledger_rows: Sequence[Row], out: Path, start: datetime.date | None, end: datetime.date | None) -> Path:
    """The period defaults to the 7 days ending on the ledger's last call."""
    days = [day for row in ledger_rows if (day := _day(row)) is not None]
    end = end or max(days, default=datetime.date.today())
    start = start or end - datetime.timedelta(days=6)
    length = (end - start).days + 1
    previous = select_period(ledger_rows, start - datetime.timedelta(days=length), start - datetime.timedelta(days=1))
    earlier = [row for row in ledger_rows if (day := _day(row)) is not None and day < start]
    page = build_report(select_period(ledger_rows, start, end), start, end, previous, earlier)
    out.write_text(page, encoding="utf-8")
    return out
