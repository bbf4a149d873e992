"""The API contract: request and response models."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Language = Literal["auto", "zh", "yue", "en"]


class TranscriptionOptions(BaseModel):
    """Parameters shared by the multipart and JSON forms of POST /asr."""

    model_config = ConfigDict(extra="ignore")

    language: Language = Field(
        default="auto", description="Spoken language; `auto` lets the model decide. `yue` is Cantonese."
    )


class TranscriptionJsonRequest(TranscriptionOptions):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"audio": "data:audio/wav;base64,UklGRi4AAABXQVZFZm10IBAAAAAB...", "language": "zh"}]},
    )

    audio: str = Field(description="The audio file, base64-encoded, or as a `data:audio/...;base64,` URL.")


class Segment(BaseModel):
    id: int
    start: float = Field(description="Seconds from the start of the audio.")
    end: float
    text: str
    confidence: float = Field(description="Mean token probability, 0..1.")


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
                    "segments": [{"id": 0, "start": 0.32, "end": 4.1, "text": "我想问我在滨海新区有房", "confidence": 0.91}],
                    "model": "zai-org/GLM-ASR-Nano-2512",
                    "timing": {"decode_ms": 3.1, "vad_ms": 20.4, "queue_ms": 12.0, "inference_ms": 240.5, "total_ms": 280.2},
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
    model: str
    timing: Timing


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    model: str
