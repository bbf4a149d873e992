"""`analyze(text) -> Ticket`: one call as the structured ticket a 12345 centre files."""

import dataclasses
import datetime
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, Field

from asr_service.hotline.config import Category, HotlineConfig, Referral, RequestType, Urgency, load_config
from asr_service.hotline.learning import CategoryModel
from asr_service.hotline.places import place_of
from asr_service.hotline.repeats import PastCall, find_repeats
from asr_service.hotline.rules import (
    category_of,
    is_resolved,
    problems_of,
    referral_of,
    request_type_of,
    urgency_of,
)
from asr_service.hotline.text import Match, NormalizedText, citizen_words, normalize

DEFAULT_REPEAT_WINDOW_DAYS = 30
SUMMARY_CHARS = 80


class Ticket(BaseModel):
    call_id: str | None = Field(default=None, description="The call's id (job id, request id or file name).")
    time: datetime.datetime | None = Field(default=None, description="When the call was made.")
    category: Category
    urgency: Urgency
    request_type: RequestType
    emergency_referral: Referral | None = Field(description="Transfer at once to 110, 119 or 120; null otherwise.")
    location: str = Field(description="The place as said in the transcript (an exact substring); empty if none.")
    district: str = Field(description="The district from the jurisdiction table; empty if it cannot be told.")
    department: str = Field(description="The category's bureau in that district (the city's when none).")
    keywords: list[str] = Field(description="What decided: category keywords, danger and escalation cues, names.")
    summary: str = Field(description="The sentence that states the request.")
    speaker_text: str = Field(description="The caller's words (the citizen's turns of a both-sides transcript).")
    problems: list[str] = Field(description="The problem groups the call is about (for repeats and the report).")
    repeat_of: list[str] = Field(default_factory=list, description="Earlier calls of the same chain, oldest first.")
    repeat_score: float | None = Field(default=None, description="0–1: how alike place and problem are; null if new.")
    needs_review: bool = Field(description="The rules were unsure: a supervisor should check the category.")
    review_reasons: list[str] = Field(default_factory=list)
    decided_by: str = Field(default="rules", description="`rules`, or `rules+model` with a trained classifier.")
    corrected_by: str | None = Field(default=None, description="Who corrected category, urgency or department.")

    def as_past_call(self) -> PastCall | None:
        if self.call_id is None or self.time is None:
            return None
        return PastCall(
            call_id=self.call_id,
            time=as_aware(self.time),
            location=self.location,
            district=self.district,
            problems=frozenset(self.problems),
            repeat_of=tuple(self.repeat_of),
            text=self.speaker_text,
        )


@dataclasses.dataclass(frozen=True)
class Analyzer:
    """The configuration and (optionally) a classifier trained on the centre's corrections, loaded once."""

    config: HotlineConfig
    model: CategoryModel | None = None
    repeat_window_days: int = DEFAULT_REPEAT_WINDOW_DAYS

    @classmethod
    def load(
        cls,
        config_path: Path | str | None = None,
        model_dir: Path | str | None = None,
        repeat_window_days: int = DEFAULT_REPEAT_WINDOW_DAYS,
    ) -> "Analyzer":
        model = CategoryModel.load(Path(model_dir)) if model_dir else None
        return cls(load_config(config_path), model, repeat_window_days)

    def analyze(
        self,
        text: str,
        *,
        call_id: str | None = None,
        time: datetime.datetime | None = None,
        history: Iterable[Ticket | PastCall] | None = None,
    ) -> Ticket:
        config = self.config
        speaker_text = citizen_words(text)
        said = normalize(speaker_text, config)
        decision = category_of(said, config)
        category, decided_by = decision.category, "rules"
        if self.model is not None:
            category = self.model.combine(said.text, decision.scores, decision.category)
            decided_by = "rules+model"
        urgency, urgency_cues = urgency_of(said, config)
        referral, referral_cues = referral_of(said, config)
        if referral and urgency != "高":  # a matter for 110/119/120 is a danger, whichever words said so
            urgency, urgency_cues = "高", referral_cues
        request_type, request_cues = request_type_of(said, config, category, urgency, referral)
        place = place_of(said, config)
        if not place.location and speaker_text != text:
            place = place_of(normalize(text, config), config)
        problems = problems_of(said, config, decision.all_matches)
        reasons = []
        if not decision.confident:
            reasons.append("category unsure")
        if place.location and not place.district:
            reasons.append("district unknown")
        ticket = Ticket(
            call_id=call_id,
            time=time,
            category=category,
            urgency=urgency,
            request_type=request_type,
            emergency_referral=referral,
            location=place.location,
            district=place.district,
            department=config.department_for(category, place.district),
            keywords=_labels([*decision.matches, *urgency_cues, *referral_cues, *request_cues, *place.names]),
            summary=_summary(said, [*decision.all_matches, *urgency_cues, *request_cues]),
            speaker_text=speaker_text,
            problems=sorted(problems),
            needs_review=bool(reasons),
            review_reasons=reasons,
            decided_by=decided_by,
        )
        if history is not None and (past := ticket.as_past_call()) is not None:
            calls = [h.as_past_call() if isinstance(h, Ticket) else h for h in history]
            repeat_of, score = find_repeats(past, [c for c in calls if c], config, self.repeat_window_days)
            if repeat_of:
                ticket.repeat_of, ticket.repeat_score = repeat_of, score
                if ticket.urgency == "低" and not is_resolved(said, config):
                    ticket.urgency = "中"
                    ticket.keywords.append("重复来电")
        return ticket


def analyze(
    text: str,
    *,
    call_id: str | None = None,
    time: datetime.datetime | None = None,
    history: Iterable[Ticket | PastCall] | None = None,
    config: HotlineConfig | None = None,
) -> Ticket:
    """One call as a ticket, with the default configuration (or `config`) and no classifier."""
    return Analyzer(config or load_config()).analyze(text, call_id=call_id, time=time, history=history)


def as_aware(moment: datetime.datetime) -> datetime.datetime:
    """Naive times are taken as UTC, so calls from any source compare."""
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _labels(matches: list[Match]) -> list[str]:
    seen: dict[str, None] = {}
    for match in matches:
        seen.setdefault(match.label, None)
    return list(seen)


def _summary(text: NormalizedText, matches: list[Match]) -> str:
    """The sentence holding the most decisive words (a clause of it when the transcript has no full stops)."""
    if not text.text.strip():
        return ""
    bounds: dict[tuple[int, int], int] = {}
    position = 0
    while position < len(text.text):
        start, end = text.sentence_bounds(position)
        if end > start:
            bounds.setdefault((start, end), 0)
        position = end + 1
    for match in matches:
        key = text.sentence_bounds(match.start)
        bounds[key] = bounds.get(key, 0) + (match.end - match.start)
    if not bounds:  # punctuation only ("。"): no sentence to quote
        return ""
    start, end = max(bounds, key=lambda b: (bounds[b], -b[0]))
    if end - start > SUMMARY_CHARS and matches:
        inside = [m for m in matches if start <= m.start < end]
        if inside:
            anchor = min(inside, key=lambda m: m.start).start
            start = max(start, text.clause_start(anchor))
            end = min(end, start + SUMMARY_CHARS)
    return text.original_span(start, end).strip(" ，,。")
