"""The API contract: request and response models."""

import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, field_validator

from asr_service.hotline.analysis import Ticket
from asr_service.hotwords import MAX_HOTWORDS, split_hotwords
from asr_service.redaction import MAX_TEXT_CHARS, RedactionKind

Language = Literal["auto", "zh", "yue", "en"]
ChannelMode = Literal["auto", "mix", "split"]
ResponseFormat = Literal["json", "text", "srt", "vtt"]

EXAMPLE_AUDIO = "data:audio/wav;base64,UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="
"""A valid (empty) WAV, so the schema's examples are valid requests; a real call is megabytes of base64."""


def _time_as_text(value: object) -> object:
    if isinstance(value, int | float):
        raise ValueError("a date and time in ISO 8601 text, e.g. 2026-11-22T08:15:00+08:00")
    return value


CALL_YEARS = range(1970, 2100)
"""The years a call can have been made in. Outside them a time is a mistake, and at the ends of Python's calendar
(year 1, 9999) the repeat window and time zones overflow (year 1 was a 500, found by a schemathesis sweep)."""


def _time_of_a_call(value: datetime.datetime) -> datetime.datetime:
    if value.year not in CALL_YEARS:
        raise ValueError(f"a time between {CALL_YEARS.start} and {CALL_YEARS.stop - 1}")
    return value


IsoDateTime = Annotated[
    datetime.datetime, Strict(False), BeforeValidator(_time_as_text), AfterValidator(_time_of_a_call)
]
"""A call's time as the schema offers it: ISO 8601 text, in CALL_YEARS. pydantic would also read a number as Unix
seconds, which no client of a hotline means (48 would file the call in 1970); lax even inside a strict JSON model,
since JSON has no date type."""


def _number_not_text(value: object) -> object:
    if isinstance(value, str | bool):
        raise ValueError("a JSON number, not text or a boolean")
    return value


NUMBER_NOT_TEXT = BeforeValidator(_number_not_text)
"""For an integer in a strict JSON model, with `Field(strict=False)` before it: a number as JSON Schema has it, 9 or
9.0 (json.loads makes the second a float, which strict mode refuses), never "9" or true. (Constraints such as `ge`
must come before it in `Annotated`, or the schema shows them under their Python names.)"""

STRICT_JSON = ConfigDict(extra="forbid", strict=True)
"""JSON bodies take exactly the types their schema names: no "true" or 1 for a boolean, no "5" for a number. (Form
fields and query parameters are text and are read laxly.)"""


class TranscriptionOptions(BaseModel):
    """Parameters shared by the multipart and JSON forms of POST /asr (also accepted in the query string)."""

    model_config = ConfigDict(extra="ignore")

    language: Language = Field(
        default="auto", description="Spoken language; `auto` lets the model decide. `yue` is Cantonese."
    )
    channels: ChannelMode = Field(
        default="auto",
        description="`mix`: downmix to mono. `split`: transcribe each channel on its own (agent/caller recordings). "
        "`auto`: split when the channels carry different speech, mix when they are copies.",
    )
    hotwords: list[str] = Field(
        default_factory=list,
        max_length=MAX_HOTWORDS,
        description="Names and terms likely in the call; a list, or comma-separated in a form.",
    )
    response_format: ResponseFormat = Field(default="json", description="`json`, `text`, `srt` or `vtt`.")
    redact: bool | None = Field(
        default=None,
        description="Mask ID-card, phone and bank-card numbers, e-mail addresses and licence plates in the text and "
        "segments (every output format). Unset: the server's `ASR_REDACT`.",
    )
    analyze: bool = Field(
        default=False,
        description="Also file the call as a hotline ticket (category, urgency, place, department, repeats): "
        "`ticket` in the result, recorded in the history with the call's id and time.",
    )
    call_time: IsoDateTime | None = Field(
        default=None,
        description="When the call was made (ISO 8601, 1970–2099), for repeat detection; default: now (a job: when "
        "queued).",
    )

    @field_validator("hotwords", mode="before")
    @classmethod
    def _split_hotwords(cls, value: object) -> list[str]:
        return split_hotwords(value)


class TranscriptionJsonRequest(TranscriptionOptions):
    model_config = STRICT_JSON | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "audio": EXAMPLE_AUDIO,
                    "language": "zh",
                    "channels": "split",
                    "hotwords": ["滨海新区", "12345"],
                }
            ]
        },
    )

    audio: str = Field(description="The audio file, base64-encoded, or as a `data:audio/...;base64,` URL.")
    filename: str | None = Field(
        default=None, max_length=255, description="The recording's file name, used to name saved results."
    )


class Segment(BaseModel):
    id: int
    start: float = Field(description="Seconds from the start of the audio.")
    end: float
    text: str
    confidence: float = Field(description="Mean token probability, 0..1.")
    language: str | None = Field(default=None, description="`zh`, `yue` or `en`, from this segment's text.")
    channel: int | None = Field(default=None, description="Source channel (split mode only).")
    speaker: str | None = Field(default=None, description="Role of that channel, e.g. `agent`, `caller` (split mode).")
    needs_review: bool = Field(default=False, description="Low confidence or a removed decoding loop: check by ear.")
    loop_removed: bool = Field(default=False, description="The model repeated itself; the repeats were cut.")
    original_text: str | None = Field(default=None, description="When a supervisor corrected `text`: the model's.")
    corrected_by: str | None = Field(default=None, description="Who corrected `text` (nginx's basic-auth user).")


class Timing(BaseModel):
    decode_ms: float
    vad_ms: float
    queue_ms: float
    inference_ms: float
    total_ms: float


class TranscriptionResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f2c9b1e8a4d4c0f9e7a6b5c4d3e2f10",
                    "text": "我想问我在滨海新区有房",
                    "language": "zh",
                    "duration": 6.0,
                    "confidence": 0.87,
                    "segments": [
                        {
                            "id": 0,
                            "start": 0.32,
                            "end": 4.1,
                            "text": "我想问我在滨海新区有房",
                            "confidence": 0.91,
                            "language": "zh",
                            "channel": None,
                            "speaker": None,
                            "needs_review": False,
                            "loop_removed": False,
                        }
                    ],
                    "channels": 1,
                    "channel_mode": "mix",
                    "needs_review": False,
                    "model": "zai-org/GLM-ASR-Nano-2512",
                    "timing": {
                        "decode_ms": 3.1,
                        "vad_ms": 20.4,
                        "queue_ms": 12.0,
                        "inference_ms": 240.5,
                        "total_ms": 280.2,
                    },
                }
            ]
        }
    )

    id: str
    text: str = Field(description="The whole transcript; empty when the audio holds no speech.")
    language: str | None = Field(description="Language of the transcript (`zh`, `yue`, `en`); null if no speech.")
    duration: float = Field(description="Audio duration in seconds.")
    confidence: float | None = Field(description="Duration-weighted mean of segment confidences; null if no speech.")
    segments: list[Segment]
    channels: int = Field(description="Channels in the recording.")
    channel_mode: Literal["mix", "split"] = Field(description="How the channels were transcribed.")
    needs_review: bool = Field(description="True if any segment needs review.")
    model: str
    timing: Timing
    redactions: dict[str, int] | None = Field(
        default=None,
        description="When personal data was masked: how many of each kind (`id_card`, `mobile`, `landline`, "
        "`bank_card`, `email`, `plate`); null when masking was off.",
    )
    ticket: Ticket | None = Field(default=None, description="The hotline ticket, when `analyze` was asked for.")


class RedactRequest(BaseModel):
    model_config = STRICT_JSON | ConfigDict(
        json_schema_extra={"examples": [{"text": "我手机138 1234 5678，住幸福路3号"}]}
    )

    text: str = Field(max_length=MAX_TEXT_CHARS, description=f"At most {MAX_TEXT_CHARS:,} characters.")


class RedactionSpan(BaseModel):
    kind: RedactionKind
    start: int = Field(description="Offset of the first masked character (characters, not bytes).")
    end: int = Field(description="Offset just past the last masked character.")


class RedactResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"text": "我手机*************，住幸福路3号", "redactions": [{"kind": "mobile", "start": 3, "end": 16}]}
            ]
        }
    )

    text: str = Field(description="The text with every masked character replaced by `*` (same length).")
    redactions: list[RedactionSpan]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    model: str
