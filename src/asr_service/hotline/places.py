"""Where the call is about: the place as said, and the district whose bureaus must act.

A place is a run of pieces next to each other: known names from the jurisdiction table (districts, streets, areas,
landmarks, stations, compounds), names ending in a place word (幸福路, 阳光小区, 朝阳医院), house numbers (3号楼
2单元) and a position (门口, 附近). The longest run is the location; the district comes from an explicit district
name, else the longest known name, in the location first and then anywhere in the call."""

import dataclasses
import re
from functools import cache

from asr_service.hotline.config import HotlineConfig
from asr_service.hotline.text import Match, NormalizedText, longest_first

PLACE_WORDS = (
    "购物中心|服务中心|中心|商业街|步行街|大街|胡同|小区|社区|家园|花园|公寓|大厦|广场|商场|写字楼|医院|小学|中学|大学|学校|幼儿园|"
    "公园|地铁站|公交站|火车站|汽车站|菜市场|市场|超市|酒店|宾馆|饭店|餐厅|公司|工地|工厂|大桥|立交桥|环岛|"
    "村|路|街|巷|桥|站|苑|庄|园|里|城|寺|湾|府|院|楼|座|厦|店|馆|厂"
)
_NAME_CHARS = r"[\u4e00-\u9fffA-Za-z0-9]"
_STOP_CHARS = set(
    "我你他她它们的了在住是到从去个那这就说有和跟给对把被让叫要想都也还又很太好么吗呢吧啊家边里上下前后入报买卖跑须必让用做看找拿送关打"
)
_NUMBER = "[0-9一二三四五六七八九十百零两幺]+"
_HOUSE_PART = re.compile(
    rf"(?:{_NUMBER}(?:号楼|号院|号门|号线|号|栋|幢|单元|层|楼|室|期|区|排|条|巷|弄|门|座)|[a-z][0-9]?(?:座|栋|区|出口|口))+"
)
_POSITION = re.compile(
    r"(?:东|西|南|北|正)?(?:门口|大门|侧门|附近|旁边|对面|东侧|西侧|南侧|北侧|路口|十字路口|交叉口|辅路|主路|"
    r"东门|西门|南门|北门|底商|地下车库|停车场|楼下|里面|院里|院内)"
)
_PLACE_WORD = re.compile(PLACE_WORDS)
_JOINERS = set("的之")
_STOP_WORDS = ("表扬", "投诉", "举报", "反映", "经过", "路过", "位于", "地址", "就在", "这个", "那个", "一个", "一家",
               "有个", "有家", "跳楼", "上班", "上学", "一所", "一座", "一栋")  # fmt: skip
_SINGLE_PLACE_WORDS = frozenset("村路街巷桥站苑庄园里城寺湾府院楼座厦店馆厂")
_GENERIC_NAMES = frozenset({"社区", "大", "小", "当地", "本地", "附近", "各", "某", "这家", "那家", "一家"})
_NOT_PLACE_TAILS = frozenset("群家屋车网心眼手嘴话夜月梦道")
"""A name ending so is a thing, not a place, before 里/城/... (微信群里, 心里, 夜里, 楼道里)."""


@dataclasses.dataclass(frozen=True)
class Place:
    location: str
    """Exactly as the transcript says it; empty when no usable place was said."""
    district: str
    """A district of the jurisdiction table; empty when none can be told."""
    names: list[Match]
    """The known names found (for the ticket's keywords)."""


@cache
def _alias_owners(config: HotlineConfig) -> dict[str, str]:
    owners: dict[str, str] = {}
    for district, aliases in config.districts.items():
        owners[district.lower()] = district
        for alias in aliases:
            owners.setdefault(alias.lower(), district)
    return owners


@cache
def _keywords(config: HotlineConfig) -> frozenset[str]:
    return frozenset(word for rules in config.categories.values() for word in rules.keywords)


def known_names(text: NormalizedText, config: HotlineConfig) -> list[Match]:
    owners = _alias_owners(config)
    return longest_first(match for alias in owners for match in text.find(alias))


def _named_places(text: str, lexicon: frozenset[str] = frozenset()) -> list[tuple[int, int]]:
    """Name + place word (幸福路, 阳光小区): the name runs left from the place word until a word that is not a name."""
    spans = []
    for found in _PLACE_WORD.finditer(text):
        start = found.start()
        while start > 0 and re.match(_NAME_CHARS, text[start - 1]) and text[start - 1] not in _STOP_CHARS:
            if text[max(0, start - 2) : start] in _STOP_WORDS:
                break
            start -= 1
            if found.start() - start >= 8:
                break
        shortest = 2 if found.group() in _SINGLE_PLACE_WORDS else 1
        name = text[start : found.start()]
        if (
            len(name) >= shortest
            and not name.isdigit()  # 986路 is a bus line
            and name not in _GENERIC_NAMES  # 社区医院: which one?
            and not (found.group() in _SINGLE_PLACE_WORDS and name[-1] in _NOT_PLACE_TAILS)
            and not (name in lexicon and found.group() in ("公司", "店"))  # 燃气公司, 物业公司: a kind, not a place
        ):
            spans.append((start, found.end()))
    return spans


def _pieces(text: NormalizedText, names: list[Match], lexicon: frozenset[str]) -> list[tuple[int, int, bool]]:
    """(start, end, named): named pieces can stand alone; house numbers and positions only extend a place. A name
    + place word starts no earlier than a known name inside it (表扬朝阳医院 → 朝阳医院)."""
    pieces = [(m.start, m.end, True) for m in names]
    for start, end in _named_places(text.text, lexicon):
        inside = [m.start for m in names if start <= m.start < end]
        pieces.append((min(inside, default=start), end, True))
    pieces += [(m.start(), m.end(), False) for m in _HOUSE_PART.finditer(text.text)]
    pieces += [(m.start(), m.end(), False) for m in _POSITION.finditer(text.text)]
    return sorted(pieces)


def _runs(text: NormalizedText, pieces: list[tuple[int, int, bool]]) -> list[tuple[int, int, int]]:
    """Adjacent pieces (touching, overlapping, or joined by 的) merged: (start, end, named pieces in it)."""
    runs: list[list[int]] = []
    for start, end, named in pieces:
        if runs:
            last = runs[-1]
            gap = text.text[last[1] : start]
            if start <= last[1] or (len(gap) == 1 and gap in _JOINERS) or (0 < len(gap) <= 2 and not gap.strip()):
                if named or start <= last[1] or gap:
                    last[1] = max(last[1], end)
                    last[2] += named
                    continue
        runs.append([start, end, int(named)])
    return [(start, end, named) for start, end, named in runs if named]


def place_of(text: NormalizedText, config: HotlineConfig) -> Place:
    names = known_names(text, config)
    runs = _runs(text, _pieces(text, names, _keywords(config)))
    vague = {word.lower() for word in config.vague_places}
    alias_starts = {m.start for m in names}
    districts = {name.lower() for name in config.districts} | {
        short for name in config.districts if len(short := name.removesuffix("区").lower()) >= 2
    }
    ranked = sorted(
        runs,
        key=lambda run: (any(run[0] <= s < run[1] for s in alias_starts), run[2], run[1] - run[0]),
        reverse=True,
    )
    location = ""
    span = (0, 0)
    for start, end, _ in ranked:
        while end > start and (text.text[end - 1] in _JOINERS or text.text[end - 1].isspace()):
            end -= 1
        said = text.text[start:end]
        if said not in vague and said not in districts and len(said) >= 2:  # a district alone routes, not locates
            location = text.original_span(start, end)
            span = (start, end)
            break
    owners = _alias_owners(config)
    inside = [m for m in names if span[0] <= m.start and m.end <= span[1]]
    district = _district(inside, owners) or _district(names, owners)
    return Place(location=location, district=district, names=names)


def _district(names: list[Match], owners: dict[str, str]) -> str:
    explicit = [m for m in names if owners[m.word] == m.word or owners[m.word].removesuffix("区") == m.word]
    chosen = explicit or sorted(names, key=lambda m: -(m.end - m.start))
    return owners[chosen[0].word] if chosen else ""
