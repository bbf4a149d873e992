"""The rules: category, urgency, emergency referral, request type and the problem, from the lexicons.

Each decision returns the matches that made it, so a ticket can say why."""

import dataclasses
from functools import cache

from asr_service.hotline.config import CATEGORIES, Category, HotlineConfig, Referral, RequestType, Urgency
from asr_service.hotline.text import Match, NormalizedText, longest_first

SUBJECT_SCORE = 3
"""A category scoring this much has a real subject: a question about it stays in it (a pension question is 劳动社保)."""
NEAR_NEGATION_GAP = {1: 1, 2: 4}
"""Characters allowed between a negation and its cue: 1 after 不/没 (不会着火), 4 after longer ones (没有人被困)."""
PAST_WINDOW = 10
HEDGE_WINDOW = 30
"""A hedge (怕, 万一) makes a danger hypothetical from at most this far before it in the clause."""
RESOLUTION_WINDOW = 30


@dataclasses.dataclass(frozen=True)
class CategoryDecision:
    category: Category
    scores: dict[Category, int]
    matches: list[Match]
    """The keywords of the chosen category that matched."""
    all_matches: list[Match]
    confident: bool


@cache
def _keyword_owners(config: HotlineConfig) -> dict[str, list[tuple[Category, int]]]:
    owners: dict[str, list[tuple[Category, int]]] = {}
    for category, rules in config.categories.items():
        for word, weight in rules.keywords.items():
            owners.setdefault(word.lower(), []).append((category, weight))
    return owners


def category_of(text: NormalizedText, config: HotlineConfig) -> CategoryDecision:
    owners = _keyword_owners(config)
    found = [match for word in owners for match in text.find(word)]
    chosen = longest_first(found, {word: max(w for _, w in owned) for word, owned in owners.items()})
    live = [m for m in chosen if not _negated(text, m, config)]
    if sum(max(w for _, w in owners[m.word]) for m in live) >= SUBJECT_SCORE:
        chosen = live  # 没有着火, 就是有人抽烟: the smoke is the subject; a false alarm alone keeps its subject
    scores: dict[Category, int] = dict.fromkeys(CATEGORIES, 0)
    for match in chosen:
        for category, weight in owners[match.word]:
            scores[category] += weight if match.said == match.word else max(1, weight - 1)  # by sound: less sure
    subjects = {c: s for c, s in scores.items() if c not in (config.question_category, config.fallback_category)}
    best_subject = max(subjects, key=lambda c: (subjects[c], -CATEGORIES.index(c)))
    praise = any(text.find_cue(word) for word in config.praise_words)
    if praise:
        category = config.fallback_category
    elif subjects[best_subject] >= scores[config.fallback_category] and (
        subjects[best_subject] >= SUBJECT_SCORE or subjects[best_subject] > scores[config.question_category]
    ):
        category = best_subject
    elif scores[config.question_category] or scores[config.fallback_category]:
        category = max(
            (config.question_category, config.fallback_category),
            key=lambda c: (scores[c], c == config.question_category),
        )
    else:
        category = best_subject if subjects[best_subject] else config.fallback_category
    ranked = sorted(scores.values(), reverse=True)
    confident = praise or (ranked[0] >= SUBJECT_SCORE and ranked[0] - ranked[1] >= 2)
    own = [m for m in chosen if any(c == category for c, _ in owners[m.word])]
    return CategoryDecision(category, scores, own, chosen, confident)


def _negated(text: NormalizedText, match: Match, config: HotlineConfig) -> bool:
    clause = max(text.clause_start(match.start), match.start - HEDGE_WINDOW)
    before = text.text[clause : match.start]
    for word in config.negations:
        position = before.rfind(word)
        if position == -1 or len(before) - position - len(word) > NEAR_NEGATION_GAP[min(len(word), 2)]:
            continue
        if position > 0 and before[position - 1] == word[0] or before[position - 1 : position] in ("有", "是", "会"):
            continue  # 有没有, 是不是, 会不会: a question, not a denial
        return True
    return before.endswith("一") or any(word in before for word in config.hedges)  # 一着火就…: if ever


def _over(text: NormalizedText, match: Match, config: HotlineConfig) -> bool:
    """Happened before and not going on (上周打架了, 被困过人), or followed by its end (火已经灭了, 原来是烧烤)."""
    sentence_start, _ = text.sentence_bounds(match.start)
    before = text.text[max(sentence_start, match.start - PAST_WINDOW) : match.start]
    after_in_clause = text.text[match.end : text.clause_end(match.end)]
    if after_in_clause.startswith("过") or (
        any(word in before for word in config.past_markers)
        and not any(word in after_in_clause for word in config.ongoing_markers)
    ):
        return True
    after = text.text[match.end : match.end + RESOLUTION_WINDOW]
    return any(word in after for word in config.resolutions)


def live_cues(text: NormalizedText, cues: list[str], config: HotlineConfig, events: bool = True) -> list[Match]:
    """The cues present: matched, not negated, not feared or hypothetical, and (for `events`, the dangers) not over."""
    found = longest_first(match for cue in cues for match in text.find_cue(cue))
    return [m for m in found if not _negated(text, m, config) and not (events and _over(text, m, config))]


def is_resolved(text: NormalizedText, config: HotlineConfig) -> bool:
    return any(text.find(word) for word in config.resolutions)


def urgency_of(text: NormalizedText, config: HotlineConfig) -> tuple[Urgency, list[Match]]:
    danger = live_cues(text, config.urgency["高"], config)
    if danger:
        return "高", danger
    if is_resolved(text, config):
        return "低", []
    pressing = live_cues(text, config.urgency["中"], config, events=False)
    if pressing:
        return "中", pressing
    return "低", []


def referral_of(text: NormalizedText, config: HotlineConfig) -> tuple[Referral | None, list[Match]]:
    for service, cues in config.emergency.items():
        live = live_cues(text, cues, config)
        if live:
            return service, live
    return None, []


def request_type_of(
    text: NormalizedText, config: HotlineConfig, category: Category, urgency: Urgency, referral: Referral | None
) -> tuple[RequestType, list[Match]]:
    cues: dict[RequestType, list[Match]] = {
        kind: longest_first(m for word in words for m in text.find_cue(word))
        for kind, words in config.request_types.items()
    }
    complaint = bool(cues.get("投诉"))
    if cues.get("表扬") and not complaint and urgency != "高":
        return "表扬", cues["表扬"]
    if cues.get("举报"):
        return "举报", cues["举报"]
    if urgency == "中" or (urgency == "高" and live_cues(text, config.urgency["中"], config, events=False)):
        return "投诉", cues.get("投诉", [])  # asked before and nothing happened: a complaint
    if urgency == "高" or referral:
        return "求助", cues.get("求助", [])
    if cues.get("建议") and not complaint:
        return "建议", cues["建议"]
    if complaint:
        return "投诉", cues["投诉"]
    if cues.get("咨询"):
        return "咨询", cues["咨询"]
    if cues.get("求助"):
        return "求助", cues["求助"]
    return config.default_request_types[category], []


def problems_of(text: NormalizedText, config: HotlineConfig, keywords: list[Match]) -> frozenset[str]:
    """The problem groups the call mentions, plus its specific keywords that belong to no group."""
    grouped: set[str] = set()
    members: set[str] = set()
    for name, words in config.problems.items():
        members.update(words)
        if any(text.find_cue(word) for word in words):
            grouped.add(name)
    owners = _keyword_owners(config)
    loose = {m.word for m in keywords if m.word not in members and max(w for _, w in owners[m.word]) >= 4}
    return frozenset(grouped | loose)
