"""Property-based API testing with schemathesis against the live OpenAPI schema: every route, with generated valid
and invalid requests, answers only statuses, headers and bodies its schema documents, and the schema's own examples
are valid requests.

(schemathesis' pytest plugin does not run under pytest 9 yet, so each operation's Hypothesis strategy is driven here
directly; the checks are schemathesis' own.)"""

import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

OPERATIONS = [
    ("POST", "/asr"),
    ("POST", "/jobs"),
    ("GET", "/jobs"),
    ("GET", "/jobs/{job_id}"),
    ("GET", "/jobs/{job_id}/result"),
    ("DELETE", "/jobs/{job_id}"),
    ("GET", "/jobs/{job_id}/audio"),
    ("POST", "/corrections"),
    ("GET", "/corrections"),
    ("POST", "/v1/audio/transcriptions"),
    ("POST", "/redact"),
    ("POST", "/analyze"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]
SWEEP_EXAMPLES = os.environ.get("ASR_TEST_SCHEMA_EXAMPLES")
EXAMPLES_PER_MODE = int(SWEEP_EXAMPLES or 25)
"""Positive and negative cases per operation. By default 25 of each, drawn the same way every run, so a red CI
names a change and not a lucky draw; `ASR_TEST_SCHEMA_EXAMPLES=600` sweeps wider with fresh random cases."""
AUDIO_ROUTES = {"/asr", "/jobs", "/v1/audio/transcriptions"}
"""No schema can say "bytes FFmpeg decodes as speech": a schema-valid file of random bytes is rightly 415, so
schemathesis' positive-data-acceptance check is left out on these; every other check still runs. Likewise
GET /corrections' `since`: a pattern cannot say which days exist (2026-13-45 is rightly 422); and /analyze's `time`:
a format cannot say which years a call can have been made in (year 1 is rightly 422)."""
NOT_ALL_VALID_ACCEPTED = {(method, path) for method in ("POST", "GET") for path in AUDIO_ROUTES} | {
    ("GET", "/corrections"),
    ("POST", "/analyze"),
}


def multipart_cannot_carry(case: schemathesis.Case) -> bool:
    """A form carries only text. A list is one part per item, so an empty list is no part at all and a list of one
    is the same bytes as a single value ("redact: []" or "[true]" cannot be told from absent or "true"). And a number
    or boolean put in place of text by a negative case is sent as its text ("hotwords: 0.0" is the hotword "0.0",
    "analyze: 1" is a form's usual "1"), which is not a type violation on the wire."""
    if case.media_type != "multipart/form-data" or not isinstance(case.body, dict):
        return False
    values = list(case.body.values())
    if any(isinstance(value, list) and len(value) <= 1 for value in values):
        return True
    negative = any(component.mode.is_negative for component in case.meta.components.values())
    items = [item for value in values for item in (value if isinstance(value, list) else [value])]
    return negative and any(isinstance(item, int | float | bool) or item is None for item in items)


@pytest.fixture(scope="module")
def api_schema(limits_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{limits_url}/openapi.json")


def test_the_schema_lists_every_route(api_schema: schemathesis.BaseSchema) -> None:
    listed = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert listed == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_route_keeps_to_its_schema(
    api_schema: schemathesis.BaseSchema, limits_url: str, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    strategy = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )

    @given(case=strategy)
    @settings(
        max_examples=2 * EXAMPLES_PER_MODE,
        derandomize=SWEEP_EXAMPLES is None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        if multipart_cannot_carry(case):
            reject()
        case.call_and_validate(base_url=limits_url, timeout=30, excluded_checks=excluded)

    excluded = [schemathesis.checks.positive_data_acceptance] if (method, path) in NOT_ALL_VALID_ACCEPTED else []
    check()
    assert httpx.get(f"{limits_url}/readyz").status_code == 200


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_the_schema_examples_are_valid_requests(
    api_schema: schemathesis.BaseSchema, limits_url: str, method: str, path: str
) -> None:
    """Each example in the schema (the request bodies /docs shows) is sent as is and answered as documented."""
    operation = api_schema[path][method]
    excluded = [schemathesis.checks.positive_data_acceptance] if (method, path) in NOT_ALL_VALID_ACCEPTED else []
    examples = api_schema.get_strategies_from_examples(operation)
    if method == "POST":
        assert examples, f"{path} shows no example request"
    for example in examples:

        @given(case=example)
        @settings(
            max_examples=3, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(base_url=limits_url, timeout=30, excluded_checks=excluded)
            assert response.status_code < 500

        check()
