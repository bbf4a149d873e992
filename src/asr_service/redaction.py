"""Masking personal data in transcripts: ID-card, mobile, landline and bank-card numbers, e-mail addresses,
plates.

Pure functions on text (no model, no HTTP), so the service, the jobs and a ticket system's old texts share
them.

Callers read numbers out the way people speak: in Chinese digits (一三八, 幺 for 1), in groups split by pauses the
recogniser writes as spaces or commas, with fillers between them (呃, 那个, 杠). So numbers are found in two
steps. First the digit groups of the text (maximal runs of Arabic, full-width or Chinese digits), and runs of
groups joined only by separators and fillers. Then, within a run, every stretch of whole groups is checked
against each kind's rule: an ID card's birth date and checksum, a bank card's Luhn digit, a mobile's 1[3-9]
prefix, a landline's area code (a local number needs a word such as 电话 just before it). The valid stretches
that together cover the most characters win, so "138 1234 5678 139 8765 4321" is two mobiles, not a 16-digit
card and 7 digits. A masked span keeps its length (every character becomes `*`), so offsets in the masked text
are those of the original.
"""

import datetime
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

RedactionKind = Literal["id_card", "mobile", "landline", "bank_card", "email", "plate"]
KINDS: tuple[RedactionKind, ...] = ("id_card", "mobile", "landline", "bank_card", "email", "plate")

MASK = "*"
MAX_TEXT_CHARS = 200_000
"""Longest text /redact accepts (a long call's transcript is about 20,000 characters)."""

_DIGIT_VALUES = {
    **{str(d): str(d) for d in range(10)},
    **{chr(0xFF10 + d): str(d) for d in range(10)},  # full-width ０-９
    **dict(zip("零〇○一二三四五六七八九", "000123456789", strict=True)),
    "幺": "1",  # how 1 is read out in numbers
}
_SEPARATORS = frozenset(" \t\u3000-–—_·•.。,，、;；:：/+()（）")
_FILLERS = ("那个", "就是", "然后", "的话", "号码", "呃", "嗯", "啊", "额", "哦", "唔", "杠", "横")
"""Words a caller says between the groups of one number ("区号零七五五，号码八七六五…" is one landline)."""
_MAX_GAP_CHARS = 6
_ID_CHECK_CHARS = "XxＸｘ叉"
_LOCAL_NUMBER_CONTEXT = re.compile(r"(电话|号码|座机|手机|联系|打|拨|热线|分机|tel|phone)", re.IGNORECASE)
_CONTEXT_WINDOW = 12

_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_PLATE_CHAR = "[A-HJ-NP-Za-hj-np-z0-9０-９零〇一二三四五六七八九幺]"
_PLATE = re.compile(
    rf"[{_PROVINCES}]\s?[A-HJ-NP-Za-hj-np-z]\s?[·•.\-]?\s?(?:{_PLATE_CHAR}\s?){{4,5}}(?:{_PLATE_CHAR}|[挂学警港澳])"
)
_EMAIL_LOCAL = r"[A-Za-z0-9._%+\-零〇一二三四五六七八九幺]{1,64}"
_EMAIL_DOT = r"\s?(?:\.|点|dot)\s?"
_EMAIL_LABEL = r"[A-Za-z0-9\-]{1,63}"
_EMAIL = re.compile(  # every repeat bounded: a hostile text cannot make the search quadratic
    rf"{_EMAIL_LOCAL}@{_EMAIL_LABEL}(?:\.{_EMAIL_LABEL}){{0,4}}\.[A-Za-z]{{2,24}}"  # written
    rf"|{_EMAIL_LOCAL}\s?(?:@|＠|艾特|(?<![A-Za-z])at(?![A-Za-z]))\s?{_EMAIL_LABEL}"  # spoken
    rf"(?:{_EMAIL_DOT}{_EMAIL_LABEL}){{0,4}}{_EMAIL_DOT}(?:com|cn|net|org|gov|edu|co)(?![A-Za-z])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Redaction:
    kind: RedactionKind
    start: int
    """Offset of the first masked character (Python string index: one per character, CJK included)."""
    end: int
    """Offset just past the last masked character."""


@dataclass(frozen=True)
class RedactedText:
    text: str
    redactions: list[Redaction]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(r.kind for r in self.redactions))


@dataclass(frozen=True)
class _Group:
    """A maximal run of digit characters: where it is in the text, and its value as ASCII digits."""

    start: int
    end: int
    digits: str


def redact(text: str) -> RedactedText:
    """Mask every piece of personal data in `text`; the result has the same length."""
    found = [
        *(_span("email", m) for m in _EMAIL.finditer(text)),
        *(_span("plate", m) for m in _PLATE.finditer(text)),
    ]
    taken = _most_covering(found)
    blanked = _blank(text, taken)  # numbers inside an address or a plate are not matched again
    numbers = [
        r for run in _runs(_groups(blanked), blanked) for r in _most_covering(list(_numbers_in_run(run, blanked)))
    ]
    redactions = sorted(taken + numbers, key=lambda r: r.start)
    return RedactedText(_mask(text, redactions), redactions)


def redact_texts(texts: Sequence[str], joiner: str = "，") -> tuple[list[str], dict[str, int]]:
    """Mask consecutive texts (a transcript's segments) as one, so a number read across a pause that ended a segment
    is still found; returns the masked texts and how many of each kind were masked."""
    whole = redact(joiner.join(texts))
    masked: list[str] = []
    offset = 0
    for text in texts:
        masked.append(whole.text[offset : offset + len(text)])
        offset += len(text) + len(joiner)
    return masked, whole.counts


def is_valid_id_card(number: str) -> bool:
    """A mainland resident ID number (GB 11643): region, a real birth date, and the ISO 7064 MOD 11-2 check."""
    if len(number) != 18 or not number[:17].isdigit() or number[0] == "0":
        return False
    try:
        born = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if not 1900 <= born.year <= 2100:
        return False
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    check = "10X98765432"[sum(int(d) * w for d, w in zip(number, weights, strict=False)) % 11]
    return number[17].upper() == check


def is_luhn_valid(number: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(number)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _number_kind(digits: str, local_context: bool) -> RedactionKind | None:
    """What a complete digit string is, by the rule of each kind; most specific first."""
    n = len(digits)
    if n < 7:
        return None
    if n == 18 and is_valid_id_card(digits):
        return "id_card"
    if (n == 11 and re.fullmatch(r"1[3-9]\d{9}", digits)) or (n == 13 and re.fullmatch(r"861[3-9]\d{9}", digits)):
        return "mobile"
    if 16 <= n <= 19 and digits[0] != "0" and is_luhn_valid(digits):
        return "bank_card"
    if digits.startswith("0") and n > 1:
        if (digits[1] in "12" and n == 11) or (digits[1] in "3456789" and n in (11, 12)):
            return "landline"
    elif local_context and n in (7, 8) and digits[0] in "2345678":
        return "landline"
    return None


def _groups(text: str) -> list[_Group]:
    groups: list[_Group] = []
    i = 0
    while i < len(text):
        if text[i] not in _DIGIT_VALUES:
            i += 1
            continue
        start = i
        while i < len(text) and text[i] in _DIGIT_VALUES:
            i += 1
        digits = "".join(_DIGIT_VALUES[c] for c in text[start:i])
        groups.append(_Group(start, i, digits))
    return groups


def _is_gap(gap: str) -> bool:
    """Only separators and fillers between two digit groups: the same number, read with a pause."""
    if len(gap) > _MAX_GAP_CHARS:
        return False
    rest = "".join(c for c in gap if c not in _SEPARATORS)
    while rest:
        filler = next((f for f in _FILLERS if rest.startswith(f)), None)
        if filler is None:
            return False
        rest = rest[len(filler) :]
    return True


def _runs(groups: list[_Group], text: str) -> Iterator[list[_Group]]:
    run: list[_Group] = []
    for group in groups:
        if run and not _is_gap(text[run[-1].end : group.start]):
            yield run
            run = []
        run.append(group)
    if run:
        yield run


def _numbers_in_run(run: list[_Group], text: str) -> Iterator[Redaction]:
    """Every stretch of whole groups that is a valid number; inside a long unbroken group, every window that is an
    ID card or a mobile (two numbers read without a pause)."""
    context = bool(_LOCAL_NUMBER_CONTEXT.search(text[max(0, run[0].start - _CONTEXT_WINDOW) : run[0].start]))
    for a in range(len(run)):
        digits = ""
        for b in range(a, len(run)):
            digits += run[b].digits
            if len(digits) > 19:
                break
            end = run[b].end
            if len(digits) == 17 and end < len(text) and text[end] in _ID_CHECK_CHARS:
                if is_valid_id_card(digits + "X"):
                    yield Redaction("id_card", run[a].start, end + 1)
                continue
            kind = _number_kind(digits, context and a == 0)
            if kind is not None:
                yield Redaction(kind, run[a].start, end)
    for group in run:
        if len(group.digits) > 19:
            for width, kind in ((18, "id_card"), (11, "mobile")):
                for i in range(len(group.digits) - width + 1):
                    if _number_kind(group.digits[i : i + width], False) == kind:
                        yield Redaction(kind, group.start + i, group.start + i + width)


def _most_covering(candidates: list[Redaction]) -> list[Redaction]:
    """The non-overlapping candidates that together cover the most characters; on a tie, fewer and more specific
    ones (weighted interval scheduling, linear in the candidates once sorted)."""
    ordered = sorted(candidates, key=lambda r: (r.end, r.start))
    # best[i]: the score of the best choice among the first i candidates; taken[i]: whether it takes candidate i-1
    best: list[tuple[int, int, int]] = [(0, 0, 0)]
    taken: list[bool] = [False]
    previous: list[int] = [0]  # how many candidates end before candidate i-1 starts
    for i, r in enumerate(ordered):
        j = i
        while j > 0 and ordered[j - 1].end > r.start:
            j -= 1
        covered, pieces, ranks = best[j]
        take = (covered + r.end - r.start, pieces - 1, ranks - KINDS.index(r.kind))
        taken.append(take > best[i])
        best.append(max(best[i], take))
        previous.append(j)
    chosen: list[Redaction] = []
    i = len(ordered)
    while i > 0:
        if taken[i]:
            chosen.append(ordered[i - 1])
            i = previous[i]
        else:
            i -= 1
    return chosen[::-1]


def _span(kind: RedactionKind, match: re.Match[str]) -> Redaction:
    return Redaction(kind, match.start(), match.end())


def _blank(text: str, redactions: list[Redaction]) -> str:
    """`text` with the redacted spans replaced by a character that is neither a digit nor a separator."""
    chars = list(text)
    for r in redactions:
        chars[r.start : r.end] = "□" * (r.end - r.start)
    return "".join(chars)


def _mask(text: str, redactions: list[Redaction]) -> str:
    chars = list(text)
    for r in redactions:
        chars[r.start : r.end] = MASK * (r.end - r.start)
    return "".join(chars)
