"""Repeat complaints: the same problem at the same place as earlier tickets within a window of the calls' own times.

Places are compared on what identifies them: numbers must agree (3号楼 is not 5号楼; 三 and 3 are the same), and the
names must sound alike (ASR errors and traditional characters fold away) — one containing the other (望京西园三区
and 望京西园三区5号楼) or near-identical, so 望京西路 is not 望京东路 and another shop in the same mall is not the
same shop. Problems are compared by their groups (楼上漏水 and 天花板渗水 are both 漏水)."""

import dataclasses
import datetime
import re
import warnings
from collections.abc import Iterable, Sequence
from functools import lru_cache

import cn2an
from rapidfuzz import fuzz

from asr_service.hotline.config import HotlineConfig
from asr_service.hotline.places import _POSITION
from asr_service.hotline.text import normalize, syllables_of

NAME_SIMILARITY = 95
"""rapidfuzz ratio (0–100) on the names' pinyin above which two place names are one place: only a slip of a letter
or two, as homophones already sound the same and another shop or street differs by a whole name."""
_HOUSE_NUMBER = re.compile(r"\d+(?:号楼|号院|号门|号|栋|幢|单元|层|楼|室|期|区|排|条|巷|弄|门|座)?")
_GENERIC_TAIL = re.compile("(?:有限公司|公司|门店|店|餐厅|饭店|超市|工作室|工地)$")
_DEMONSTRATIVES = re.compile("那家|这家|那个|这个|一家|一个|那边|这边|那里|这里")
PROBLEM_OVERLAP = 0.5


@dataclasses.dataclass(frozen=True)
class PastCall:
    """What repeat detection needs of an earlier ticket."""

    call_id: str
    time: datetime.datetime
    location: str
    district: str
    problems: frozenset[str]
    repeat_of: tuple[str, ...] = ()
    text: str = ""
    """The caller's words: a more precise place (a shop, an employer) must be named in them to be the same place."""


@dataclasses.dataclass(frozen=True)
class PlaceKey:
    name: str
    sound: str
    numbers: tuple[str, ...]


def _sound(text: str) -> str:
    return "".join(syllable or char for syllable, char in zip(syllables_of(text), text, strict=True))


@lru_cache(maxsize=4096)
def place_key(location: str, config: HotlineConfig) -> PlaceKey:
    text = normalize(location, config).text
    for district in config.districts:
        text = text.replace(district, "")
        if len(short := district.removesuffix("区")) >= 2:
            text = text.replace(short, "")
    text = text.replace(config.city, "").replace(config.city.removesuffix("市"), "")
    text = _DEMONSTRATIVES.sub("", _POSITION.sub("", text)).replace("的", "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cn2an warns about each numeral it cannot read, and leaves it as it is
        text = cn2an.transform(text, "cn2an")
    numbers = tuple(m.group() for m in _HOUSE_NUMBER.finditer(text))
    name = _HOUSE_NUMBER.sub("", text)
    return PlaceKey(name=name, sound=_sound(name), numbers=numbers)


def place_similarity(a: PastCall, b: PastCall, config: HotlineConfig) -> float:
    """1 for the same place said more or less precisely, the names' likeness for a near-identical one, else 0.

    When one place is more precise (国贸大厦A座 → 国贸大厦A座的华远科技公司), what it adds after the shared name must
    be named in the other call's words too: another employer in the same tower is another place. What it adds before
    (the area: 梨园镇九棵树东路 → 九棵树东路) only says the same place more fully."""
    if not a.location or not b.location:
        return 0.0
    key_a, key_b = place_key(a.location, config), place_key(b.location, config)
    short, long = sorted((key_a.numbers, key_b.numbers), key=len)
    if long[: len(short)] != short or not key_a.sound or not key_b.sound:
        return 0.0
    if key_a.sound == key_b.sound:
        return 1.0
    for (inner, inner_call), (outer, _) in (((key_a, a), (key_b, b)), ((key_b, b), (key_a, a))):
        if inner.sound in outer.sound:
            at = outer.name.find(inner.name)
            added = _GENERIC_TAIL.sub("", outer.name[at + len(inner.name) :] if at != -1 else "")
            said = _sound(normalize(inner_call.text, config).text)
            return 1.0 if len(added) < 2 or _sound(added) in said else 0.0
    ratio = fuzz.ratio(key_a.sound, key_b.sound)
    return ratio / 100 if ratio >= NAME_SIMILARITY else 0.0


def problem_similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Overlap coefficient: shared problems over the smaller set."""
    if not a or not b:
        return 0.0
    return len(a & b) / min(len(a), len(b))


def find_repeats(
    call: PastCall, history: Iterable[PastCall], config: HotlineConfig, window_days: int
) -> tuple[list[str], float | None]:
    """The call ids of every earlier ticket of the chain (oldest first) and the best match's score."""
    earliest = call.time - datetime.timedelta(days=window_days)
    best = 0.0
    linked: dict[str, datetime.datetime] = {}
    earlier: Sequence[PastCall] = [p for p in history if earliest <= p.time <= call.time and p.call_id != call.call_id]
    times = {p.call_id: p.time for p in earlier}
    for past in earlier:
        if call.district and past.district and call.district != past.district:
            continue
        place = place_similarity(call, past, config)
        problem = problem_similarity(call.problems, past.problems)
        if place == 0 or problem < PROBLEM_OVERLAP:
            continue
        best = max(best, (place + problem) / 2)
        linked[past.call_id] = past.time
        for chained in past.repeat_of:
            linked.setdefault(chained, times.get(chained, past.time))
    if not linked:
        return [], None
    return sorted(linked, key=lambda call_id: (linked[call_id], call_id)), round(best, 3)
