"""Per-field accuracy of the analysis on a labelled set, and precision/recall of its repeat links.

Calls are analysed in time order, each against the tickets before it, as the service would see them."""

import datetime
from collections.abc import Sequence
from typing import Any

from asr_service.hotline.analysis import Analyzer, Ticket

FIELDS = ("category", "urgency", "district", "request_type", "referral")


def run_calls(calls: Sequence[dict[str, Any]], analyzer: Analyzer) -> list[tuple[dict[str, Any], Ticket]]:
    history: list[Ticket] = []
    results = []
    for labelled in sorted(calls, key=lambda c: c["time"]):
        ticket = analyzer.analyze(
            labelled["text"],
            call_id=labelled["call_id"],
            time=datetime.datetime.fromisoformat(labelled["time"]),
            history=history,
        )
        history.append(ticket)
        results.append((labelled, ticket))
    return results


def location_matches(expected: str, found: str) -> bool:
    """The same place: equal, or one naming it with more or less detail (the district prefix, a position word)."""
    if not expected or not found:
        return expected == found
    return expected in found or found in expected


def score(results: list[tuple[dict[str, Any], Ticket]]) -> dict[str, Any]:
    total = len(results)
    correct = dict.fromkeys((*FIELDS, "location", "location_exact"), 0)
    errors: dict[str, list[str]] = {field: [] for field in correct}
    true_links = predicted_links = right_links = 0
    for labelled, ticket in results:
        found = {
            "category": ticket.category,
            "urgency": ticket.urgency,
            "district": ticket.district,
            "request_type": ticket.request_type,
            "referral": ticket.emergency_referral,
        }
        for field in FIELDS:
            if found[field] == labelled[field]:
                correct[field] += 1
            else:
                errors[field].append(f"{labelled['call_id']}: {labelled[field]!r} → {found[field]!r}")
        if location_matches(labelled["location"], ticket.location):
            correct["location"] += 1
        else:
            errors["location"].append(f"{labelled['call_id']}: {labelled['location']!r} → {ticket.location!r}")
        correct["location_exact"] += labelled["location"] == ticket.location
        expected_links = set(labelled["repeat_of"])
        found_links = set(ticket.repeat_of)
        true_links += len(expected_links)
        predicted_links += len(found_links)
        right_links += len(expected_links & found_links)
        if expected_links != found_links:
            errors.setdefault("repeat", []).append(
                f"{labelled['call_id']}: {sorted(expected_links)} → {sorted(found_links)}"
            )
    return {
        "calls": total,
        "accuracy": {field: round(count / total, 3) for field, count in correct.items()},
        "repeat_precision": round(right_links / predicted_links, 3) if predicted_links else 1.0,
        "repeat_recall": round(right_links / true_links, 3) if true_links else 1.0,
        "errors": errors,
    }
