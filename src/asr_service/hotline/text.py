"""Transcript text as the rules read it: simplified, Mandarin, without fillers, with pinyin for homophone matching.

Every normalised character remembers where it came from, so a place found in the normalised text is returned as the
exact substring the citizen's transcript holds (ASR errors, traditional characters and all)."""

import dataclasses
import functools
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from functools import cache, lru_cache

import opencc
from pypinyin import lazy_pinyin

from asr_service.hotline.config import HotlineConfig

SENTENCE_BREAKS = "。！？!?；;\n"
CLAUSE_BREAKS = SENTENCE_BREAKS + "，,、：: "
COMPOUND_WINDOW = 20
CLAUSE_LOOKAHEAD = 40
"""How far after a cue its clause is read for "still" words (bounded: a text without commas is one clause)."""
"""Characters within which the two parts of an "A+B" cue must fall."""

_CJK = re.compile(r"[\u3400-\u9fff\U00020000-\U0002ffff]")
_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"))
_FUZZY_FINALS = (("ing", "in"), ("eng", "en"), ("ang", "an"))


@cache
def _converter() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def fuzzy_syllable(syllable: str) -> str:
    """Toneless pinyin with the distinctions ASR and southern accents blur (zh/z, n/l, -ng/-n) folded together."""
    for long, short in _FUZZY_INITIALS:
        if syllable.startswith(long):
            syllable = short + syllable[len(long) :]
            break
    for long, short in _FUZZY_FINALS:
        if syllable.endswith(long):
            return syllable[: -len(long)] + short
    return syllable


@lru_cache(maxsize=8192)
def syllables_of(text: str) -> tuple[str, ...]:
    """One fuzzy syllable per character ('' for anything not Chinese), aligned with `text`."""
    spoken = lazy_pinyin(text, errors=lambda chunk: [""] * len(chunk))
    if len(spoken) != len(text):
        spoken = [lazy_pinyin(char, errors=lambda chunk: [""])[0] if _CJK.match(char) else "" for char in text]
    return tuple(fuzzy_syllable(s) if s.isascii() and s.isalpha() else "" for s in spoken)


@dataclasses.dataclass(frozen=True)
class Match:
    word: str
    """The configured keyword (or cue) that matched."""
    start: int
    end: int
    said: str
    """What the normalised text holds there: differs from `word` when matched by sound."""

    @property
    def label(self) -> str:
        return self.word if self.said == self.word else f"{self.word}({self.said})"


@dataclasses.dataclass(frozen=True)
class NormalizedText:
    original: str
    text: str
    origin: tuple[int, ...]
    """For each character of `text`, its index in `original`."""
    syllables: tuple[str, ...]
    _joined: str
    _offsets: tuple[int, ...]
    _taken: bytes = b""
    """1 for each character inside a word of the lexicons or a known place name as written: a sound-alike there is
    that word (楼电梯 holds 电梯, not 漏电; 于家堡 is a place, not 家暴)."""

    def original_span(self, start: int, end: int) -> str:
        if start >= end:
            return ""
        return self.original[self.origin[start] : self.origin[end - 1] + 1]

    def find(self, word: str) -> list[Match]:
        """Every occurrence of `word`: by characters, and for Chinese words of 2+ characters also by sound, where at
        least half the characters agree (煤汽 for 煤气, 井该 for 井盖, but not an unrelated word that sounds alike)."""
        matches: list[Match] = []
        start = self.text.find(word)
        while start != -1:
            matches.append(Match(word, start, start + len(word), word))
            start = self.text.find(word, start + 1)
        if len(word) < 2 or not all(_CJK.match(char) for char in word):
            return matches
        wanted = "|" + "|".join(syllables_of(word)) + "|"
        found = {m.start for m in matches}
        position = self._joined.find(wanted)
        while position != -1:
            start = bisect_right(self._offsets, position) - 1
            end = start + len(word)
            said = self.text[start:end]
            if start not in found and _sounds_like(said, word) and not any(self._taken[start:end]):
                matches.append(Match(word, start, end, said))
            position = self._joined.find(wanted, position + 1)
        return matches

    def find_cue(self, cue: str) -> list[Match]:
        """A keyword, or "A+B": A and B in the same sentence within a few characters (the span covers both)."""
        if "+" not in cue:
            return self.find(cue)
        first, second = cue.split("+", 1)
        found: list[Match] = []
        seconds = sorted(self.find(second), key=lambda m: m.start)
        starts = [m.start for m in seconds]
        for a in self.find(first):
            near = seconds[
                bisect_left(starts, a.start - COMPOUND_WINDOW) : bisect_right(starts, a.start + COMPOUND_WINDOW)
            ]
            for b in near:
                lo, hi = min(a.start, b.start), max(a.end, b.end)
                if a.start != b.start and self.sentence_bounds(lo) == self.sentence_bounds(hi - 1):
                    found.append(Match(cue, lo, hi, f"{a.said}+{b.said}"))
                    break
        return found

    @functools.cached_property
    def _clause_starts(self) -> list[int]:
        return _run_starts(self.text, CLAUSE_BREAKS)

    @functools.cached_property
    def _sentences(self) -> tuple[list[int], list[int]]:
        starts = _run_starts(self.text, SENTENCE_BREAKS)
        ends = [0] * len(self.text)
        end = len(self.text)
        for index in range(len(self.text) - 1, -1, -1):
            if self.text[index] in SENTENCE_BREAKS:
                end = index
            ends[index] = end
        return starts, ends

    def clause_start(self, position: int) -> int:
        """Where the clause holding `position` starts (after the last comma, full stop... before it)."""
        return self._clause_starts[min(position, len(self.text))]

    def clause_end(self, position: int) -> int:
        end = position
        while end < len(self.text) and self.text[end] not in CLAUSE_BREAKS and end - position < CLAUSE_LOOKAHEAD:
            end += 1
        return end

    def sentence_bounds(self, position: int) -> tuple[int, int]:
        if not self.text:
            return 0, 0
        position = min(position, len(self.text) - 1)
        starts, ends = self._sentences
        return starts[position], ends[position]


_FUNCTION_CHARS = frozenset("是的了在不有个这那就也还都和与我你他她它们吗呢吧啊么说要会能去来到着过把被让给对从向得地"
                           "一二三四五六七八九十零两百千")  # fmt: skip


def _sounds_like(said: str, word: str) -> bool:
    """A homophone error, not another word: at least half the characters agree, one of them a content word, and
    none of the others is a function word or a numeral (老是 is not 老师, 是火 is not 失火, 四楼 is not 石楼)."""
    differing = [a for a, b in zip(said, word, strict=True) if a != b]
    agreeing = [a for a, b in zip(said, word, strict=True) if a == b]
    return (
        len(agreeing) >= len(word) // 2
        and not any(char in _FUNCTION_CHARS for char in differing)
        and any(char not in _FUNCTION_CHARS for char in agreeing)  # 跑了 is not 泡了: only 了 agrees
    )


def _run_starts(text: str, breaks: str) -> list[int]:
    """For each position (and the end), where its run (clause or sentence) starts: one pass, so long texts stay
    linear."""
    starts: list[int] = []
    start = 0
    for index, char in enumerate(text):
        starts.append(start)
        if char in breaks:
            start = index + 1
    starts.append(start)
    return starts


def _fold_width(char: str) -> str:
    folded = unicodedata.normalize("NFKC", char)
    return folded if len(folded) == 1 else char


@cache
def _rewrite_pattern(config: HotlineConfig) -> re.Pattern[str]:
    words = sorted({*config.spoken_forms, *config.fillers}, key=len, reverse=True)
    return re.compile("|".join(re.escape(word) for word in words))


def _rewrite(chars: str, origin: list[int], config: HotlineConfig) -> tuple[str, list[int]]:
    out: list[str] = []
    out_origin: list[int] = []
    position = 0
    for found in _rewrite_pattern(config).finditer(chars):
        out.extend(chars[position : found.start()])
        out_origin.extend(origin[position : found.start()])
        replacement = config.spoken_forms.get(found.group(), "")
        out.extend(replacement)
        out_origin.extend(origin[min(found.start() + i, found.end() - 1)] for i in range(len(replacement)))
        position = found.end()
    out.extend(chars[position:])
    out_origin.extend(origin[position:])
    return "".join(out), out_origin


def _simplify(text: str) -> str:
    simplified = _converter().convert(text)
    if len(simplified) != len(text):
        simplified = "".join(c if len(c := _converter().convert(ch)) == 1 else ch for ch in text)
    return simplified


def normalize(text: str, config: HotlineConfig) -> NormalizedText:
    """Cantonese and spoken words → Mandarin (before and after traditional → simplified, as the lexicon may name
    either form), full-width → half-width, lower-case Latin, fillers removed; each character keeps its origin."""
    folded = "".join(_fold_width(char) for char in text).lower()
    chars, origin = _rewrite(folded, list(range(len(folded))), config)
    normalized, origin = _rewrite(_simplify(chars), origin, config)
    syllables = syllables_of(normalized)
    offsets: list[int] = []
    cursor = 0
    for syllable in syllables:
        offsets.append(cursor)
        cursor += len(syllable) + 1
    taken = bytearray(len(normalized))
    for name in _written_words(config):
        start = normalized.find(name)
        while start != -1:
            taken[start : start + len(name)] = b"\x01" * len(name)
            start = normalized.find(name, start + 1)
    return NormalizedText(
        original=text,
        text=normalized,
        origin=tuple(origin),
        syllables=syllables,
        _joined="|" + "|".join(syllables) + "|",
        _offsets=tuple(offsets),
        _taken=bytes(taken),
    )


@cache
def _written_words(config: HotlineConfig) -> tuple[str, ...]:
    """Every word of two or more characters the lexicons and the jurisdiction table name."""
    words = {name for district, names in config.districts.items() for name in (district, *names)}
    words |= {word for rules in config.categories.values() for word in rules.keywords}
    cues = [*config.urgency["高"], *config.urgency["中"], *(c for cs in config.emergency.values() for c in cs)]
    cues += [w for ws in config.problems.values() for w in ws] + [w for ws in config.request_types.values() for w in ws]
    words |= {part for cue in cues for part in cue.split("+")}
    return tuple(word.lower() for word in words if len(word) >= 2)


def longest_first(matches: Iterable[Match], weight: dict[str, int] | None = None) -> list[Match]:
    """Non-overlapping matches, longer keywords first (then heavier), so 楼道灯 is not also 路灯 and 吵架 not 吵."""
    chosen: list[Match] = []
    taken: set[int] = set()
    ranked = sorted(matches, key=lambda m: (-(m.end - m.start), -(weight or {}).get(m.word, 0), m.start))
    for match in ranked:
        span = set(range(match.start, match.end))
        if span & taken:
            continue
        taken |= span
        chosen.append(match)
    return sorted(chosen, key=lambda m: m.start)


_TURN = re.compile(r"(坐席|话务员|接线员|客服|工作人员|市民|来电人|群众|来电者|居民|agent|caller|citizen)\s*[：:]")
CITIZEN_ROLES = frozenset({"市民", "来电人", "群众", "来电者", "居民", "caller", "citizen"})


def citizen_words(text: str) -> str:
    """The caller's turns of a both-sides transcript (`坐席：`/`市民：` markers, or the `agent:`/`caller:` lines of a
    split-channel transcript), joined; the text itself otherwise."""
    turns = list(_TURN.finditer(text))
    if not turns:
        return text.strip()
    parts = []
    for index, turn in enumerate(turns):
        end = turns[index + 1].start() if index + 1 < len(turns) else len(text)
        if turn.group(1) in CITIZEN_ROLES:
            parts.append(text[turn.end() : end].strip())
    return "\n".join(part for part in parts if part)
