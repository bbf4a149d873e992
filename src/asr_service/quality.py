"""Guards for an LLM-based recogniser: decoding loops, low confidence, and the language of each segment.

An audio LLM can fall into a loop ("要要要要…", one phrase over and over) on noise or music; a call-taker must never
act on such text, so loops are cut back to one occurrence and the segment is flagged for review.
"""

import re
from dataclasses import dataclass

_REPEATED_RUN = re.compile(r"(.{1,40}?)\1{2,}", re.DOTALL)
_NEVER_A_LOOP = re.compile(r"^[\d\s零一二三四五六七八九十百千万幺两.,-]+$")
"""Digits repeat in real speech: phone numbers (13333333333), house numbers, amounts."""


@dataclass(frozen=True)
class LoopCheck:
    text: str
    loop_removed: bool


def _is_loop(unit: str, repeats: int) -> bool:
    if _NEVER_A_LOOP.match(unit):
        return False
    run_length = len(unit) * repeats
    # "对对对" or "好的好的" is how people talk; eight or more characters of one unit, or a whole phrase three
    # times in a row, is the decoder going round in circles.
    return (repeats >= 4 and run_length >= 8) or (repeats >= 3 and len(unit.strip()) >= 5)


def remove_loops(text: str) -> LoopCheck:
    """Cut every looping run back to its first occurrence (and a trailing partial copy at the very end)."""
    kept: list[str] = []
    position = 0
    for match in _REPEATED_RUN.finditer(text):
        unit = match.group(1)
        if not _is_loop(unit, len(match.group(0)) // len(unit)):
            continue
        kept.append(text[position : match.start()] + unit)
        position = match.end()
        if unit.startswith(text[position:]):
            position = len(text)
    if not kept:
        return LoopCheck(text, False)
    kept.append(text[position:])
    return LoopCheck(re.sub(r"\s{2,}", " ", "".join(kept)).strip(), True)
