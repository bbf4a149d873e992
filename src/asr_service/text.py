"""How transcript text reads, in one place for every output (JSON, text, SRT, VTT, the OpenAI endpoint).

Call-takers expect Chinese punctuation and no spaces between Chinese characters ("广州市房地产中介协会，分析"), while
Latin words in code-switched speech keep their spaces ("我用 iPhone 打的电话"). Segments joined into one text get a
pause mark where the speaker paused, so English does not read as a run-on ("…Americans. Ask not…").
"""

import re
from collections.abc import Sequence
from typing import Literal, Protocol

_CJK = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_CHINESE_PUNCTUATION = "，。？！：；、"
_FULL_WIDTH = {",": "，", ".": "。", "?": "？", "!": "！", ":": "：", ";": "；"}
_CJK_OR_PUNCTUATION = rf"(?:{_CJK}|[{_CHINESE_PUNCTUATION}])"
_PUNCTUATION_AFTER_CJK = re.compile(rf"(?<={_CJK})\s*([,.?!:;])(?!\d)")
_PUNCTUATION_BEFORE_CJK = re.compile(rf"(?<![\d])([,.?!:;])\s*(?={_CJK})")
_SPACE_BETWEEN_CJK = re.compile(rf"(?<={_CJK_OR_PUNCTUATION})\s+(?={_CJK_OR_PUNCTUATION})")
_SENTENCE_END = ".?!。？！…"


def tidy_text(text: str) -> str:
    """One segment's text: ASCII punctuation inside Chinese made full-width, spaces between Chinese characters
    removed, runs of white space folded. Decimals (3.5) and English text are left alone."""
    text = " ".join(text.split())
    if not re.search(_CJK, text):
        return text
    text = _PUNCTUATION_AFTER_CJK.sub(lambda m: _FULL_WIDTH[m.group(1)], text)
    text = _PUNCTUATION_BEFORE_CJK.sub(lambda m: _FULL_WIDTH[m.group(1)], text)
    return _SPACE_BETWEEN_CJK.sub("", text)


def join_texts(parts: list[str]) -> str:
    """Join segment texts: Chinese with a full-width comma where the speaker paused without punctuation, English
    with a full stop before a capitalised segment (else a space)."""
    joined = ""
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if joined:
            joined += _separator(joined[-1], part[0])
        joined += part
    return joined


def _separator(before: str, after: str) -> str:
    chinese = re.match(_CJK, before) or re.match(_CJK, after)
    if before in _CHINESE_PUNCTUATION:
        return ""
    if chinese:
        return "" if before in _SENTENCE_END or before in ",;:" else "，"
    if before in _SENTENCE_END or before in ",;:" or not after.isupper():
        return " "
    return ". "


class _Turn(Protocol):
    text: str
    speaker: str | None


def transcript_text(segments: Sequence[_Turn], mode: Literal["mix", "split"]) -> str:
    """Mixed: one running text. Split: one line per turn, prefixed with the speaker's role."""
    if mode == "mix":
        return join_texts([s.text for s in segments])
    turns: list[tuple[str | None, list[str]]] = []
    for segment in segments:
        if turns and turns[-1][0] == segment.speaker:
            turns[-1][1].append(segment.text)
        else:
            turns.append((segment.speaker, [segment.text]))
    return "\n".join(f"{speaker}: {join_texts(texts)}" for speaker, texts in turns)
