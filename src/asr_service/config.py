"""Service settings, read from `ASR_*` environment variables.

One source of truth for every limit: nginx's `client_max_body_size` and the Docker/k8s manifests are derived from
these names, and tests build the app from a `Settings` value instead of patching globals.
"""

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from asr_service.hotwords import MAX_HOTWORDS, check_hotword

EMBEDDED_MODEL = "whisper-base"
"""The model name that selects the CPU model shipped inside our Python dependencies (no download)."""

GLM_ASR_MODEL = "zai-org/GLM-ASR-Nano-2512"
"""The production model, chosen by `ASR_MODEL=auto` when a CUDA device is present."""

MAX_BATCH_SIZE = 64
"""The most segments `ASR_MAX_BATCH_SIZE` may allow in one batch (so also the most compiled decoding graphs)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASR_", env_file=None, extra="ignore")

    model: str = "auto"
    """`auto` (CUDA present -> GLM-ASR-Nano-2512, else the embedded whisper-base), `whisper-base`, a Hugging Face
    hub id, or a local folder. The engine is chosen from what the model contains."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where the model runs; `auto` picks CUDA when available."""

    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    """GLM-ASR weights' dtype. `auto`: float16 on CUDA (the model's design), float32 on CPU (exact, and CPUs
    have the memory)."""

    glm_encoder_window: Literal["full", "trim"] = "full"
    """GLM-ASR's encoder window: `full` pads every segment to 30 s as the model was trained; `trim` pads a batch
    to its longest segment only (less encoder work; results can differ, see the README's GPU section)."""

    glm_features_on_device: bool = False
    """Compute GLM-ASR's log-mel features on the GPU rather than the CPU."""

    glm_compile: bool = False
    """GLM-ASR decodes with a static KV cache and a compiled step (CUDA graphs; CUDA only). Start-up compiles one
    graph per batch size before /readyz turns ready (see the README's GPU section for the cost and the gain)."""

    glm_compile_prefill: bool = False
    """With `ASR_GLM_DECODER=loop`: also compile GLM-ASR's prefill (audio encoder and prompt), for every prompt
    length at once (CUDA only; see the README's GPU section)."""

    glm_decoder: Literal["generate", "loop"] = "generate"
    """How GLM-ASR decodes greedily: `generate` (transformers'), or `loop`, our loop that computes the same tokens
    without making the host wait for the GPU after each one (see the README's GPU section)."""

    glm_prepare_ahead: bool = True
    """Compute each GLM-ASR segment's features and prompt tokens on a preprocessing thread as soon as VAD finds it,
    so the worker that feeds the GPU only stacks them (the same inputs; off only to measure what it saves)."""

    cache_dir: Path = Path.home() / ".cache" / "asr_service"
    """Where the embedded whisper-base model is reassembled once from its PyPI packages, and, with
    `ASR_GLM_COMPILE`, where compiled kernels are kept (`compiled/`) so a restart does not compile them again."""

    cpu_threads: int = Field(default=0, ge=0)
    """Threads for CPU inference (0: the library's default, usually all cores)."""

    host: str = "127.0.0.1"
    """Address `asr-service serve` binds to."""

    port: int = 8000
    """Port `asr-service serve` binds to."""

    forwarded_allow_ips: str = "127.0.0.1"
    """Proxies (nginx) whose X-Forwarded-For / X-Forwarded-Proto uvicorn trusts; comma-separated addresses."""

    proxy_user: str = "asr"
    """`make proxy` only: the basic-auth user it creates."""

    proxy_password: str = "change-me"
    """`make proxy` only: that user's password."""

    proxy_port: int = 8080
    """`make proxy` only: where nginx listens."""

    max_upload_mb: float = Field(default=256, gt=0)
    """Largest accepted upload (413 `payload_too_large` above). nginx's client_max_body_size must equal it."""

    body_timeout_seconds: float = Field(default=60, gt=0)
    """Longest pause while an upload streams in (408 `request_timeout` past it): a stalled client cannot hold a
    connection for ever when the service is reached without nginx."""

    max_audio_seconds: float = Field(default=4 * 3600, gt=0)
    """Longest accepted audio after decoding (413 `audio_too_long` above). Checked while decoding, so an
    over-long file is rejected without decoding all of it."""

    max_channels: int = Field(default=8, ge=1, le=64)
    """Recordings with more channels are refused (415): a call has two; 64 channels of 3 s cost minutes of CPU."""

    max_channel_seconds: float = Field(default=8 * 3600, gt=0)
    """Decoded seconds summed over channels above which a file is refused (413 `audio_too_long`): a 4-hour stereo
    call is 8 hours of channel audio."""

    max_decode_seconds: float = Field(default=300, gt=0)
    """Wall-clock bound on decoding one upload (415 past it); a 4-hour MP3 decodes in about 15 s here."""

    min_audio_seconds: float = Field(default=0.1, ge=0)
    """Shorter audio is rejected as `empty_audio` (422): it cannot hold a word."""

    max_segment_seconds: float | None = Field(default=None, gt=1, le=30)
    """Longest segment given to the model. Unset: the engine's own (Whisper 30 s, its native window; GLM-ASR 15 s,
    it degrades on long segments)."""

    merge_gap_seconds: float | None = Field(default=None, ge=0)
    """Neighbouring speech spans closer than this are merged into one segment (if it stays under the maximum), so the
    model sees whole phrases rather than fragments. Unset: the engine's own (Whisper 0 s: its 800 ms padding joins
    pauses under 1.6 s; GLM-ASR 0.6 s)."""

    vad_threshold: float = Field(default=0.35, gt=0, lt=1)
    """Silero speech probability above which a frame counts as speech. 0.35 (Silero's own default is 0.5) keeps quiet
    openings: at 0.5 the first words of a quiet caller were lost."""

    vad_min_speech_ms: int = Field(default=250, ge=0)
    """Shorter bursts of 'speech' are dropped as clicks and noise."""

    vad_min_silence_ms: int = Field(default=300, ge=0)
    """A pause must last this long to end a speech span."""

    vad_speech_pad_ms: int | None = Field(default=None, ge=0)
    """Padding kept on each side of a speech span so word onsets and endings are not clipped (200 ms lost first
    words). Unset: the engine's own (Whisper 800 ms, GLM-ASR 400 ms)."""

    preprocess_workers: int = Field(default=0, ge=0)
    """Threads that decode and segment uploads (each runs one core's worth of work). 0: one per CPU core this
    process may use. A long call is segmented a block at a time, so it never holds more than one of them."""

    max_batch_size: int | None = Field(default=None, ge=1, le=MAX_BATCH_SIZE)
    """Most segments the worker gives the model at once. Unset: what was measured fastest for the engine on its
    device (see the README's benchmark)."""

    max_wait_ms: float = Field(default=10, ge=0)
    """Longest the first segment of a batch waits for batch-mates."""

    length_window_batches: int = Field(default=4, ge=1, le=16)
    """When at least this many batches' worth of batch-job segments wait (and no caller is waiting on the line), the
    worker takes them together in the queue's fair order, sorts them by length and runs them shortest first, so
    batch-mates end at about the same decoding step (see the README's GPU section). Interactive requests are never
    sorted and go ahead of the sorted batches; 1 turns it off."""

    queue_size: int = Field(default=2048, ge=1)
    """Segments waiting for the model above which new requests get 503 `overloaded`. A request that is admitted
    enqueues all of its segments, so one long call is never refused by its own length."""

    max_queue_wait_seconds: float = Field(default=60, gt=0)
    """New requests get 503 `overloaded` (with Retry-After) while their estimated wait for the model is longer: the
    estimate comes from the audio queued per request and the model's measured speed, so under overload callers are
    told to come back instead of waiting minutes."""

    retry_after_seconds: int = Field(default=5, ge=1)
    """`Retry-After` sent with 503 `overloaded`."""

    request_timeout_seconds: float = Field(default=3600, gt=0)
    """A request whose segments are not all transcribed by then gets 504 `timeout` (its leftovers are dropped)."""

    tokens_per_second: float = Field(default=16.0, gt=0)
    """Output token budget per second of segment audio, so long speech is never cut by a fixed limit and a looping
    decoder stops early (fast Chinese speech is ~6 characters/s, up to 2 tokens each in Whisper's vocabulary)."""

    min_new_tokens: int = Field(default=16, ge=1)
    """Token budget floor for very short segments."""

    beam_size: int = Field(default=5, ge=1, le=10)
    """Beam width for the whisper engine (GLM-ASR always decodes greedily). 5 is faster-whisper's own default; beam 1
    fell into loops on Cantonese."""

    channel_roles: str = "agent,caller"
    """Speaker role of each channel in split mode, comma-separated (channel 0 first)."""

    review_threshold: float = Field(default=0.6, ge=0, le=1)
    """Segments with a confidence below this are flagged `needs_review`."""

    hotwords_file: Path | None = None
    """A UTF-8 file of terms (one per line, `#` comments) given to the model with every request, such as district,
    street and agency names."""

    chinese_script: Literal["simplified", "traditional", "as_recognised"] = "simplified"
    """Script of Chinese text in transcripts. Mainland hotlines read simplified characters; whisper-base often
    writes traditional ones."""

    engine_timeout_seconds: float = Field(default=300, gt=0)
    """A model call running longer than this is abandoned: its requests get 504 `timeout`, the worker goes on, and
    /readyz answers 503 until the stuck call ends (a batch of 15-second segments takes seconds, even on a CPU)."""

    oom_cooldown_seconds: float = Field(default=60, gt=0)
    """After the GPU runs out of memory the batch is halved; the lowered ceiling doubles back once per this period."""

    shutdown_grace_seconds: float = Field(default=120, ge=0)
    """On SIGTERM: keep listening, answer /readyz and new work with 503, and give admitted requests this long to
    finish before exiting with status 0 (Kubernetes' terminationGracePeriodSeconds must be longer)."""

    keep_alive_seconds: int = Field(default=75, ge=1)
    """Idle keep-alive connections are closed after this; longer than nginx's upstream keepalive_timeout (60 s), so
    nginx never reuses a connection the service has just closed."""

    header_timeout_seconds: float = Field(default=30, gt=0)
    """A client must send its request line and headers within this (slowloris defence without nginx)."""

    max_header_kb: int = Field(default=64, ge=8)
    """Largest request head (request line and headers) accepted; 400 beyond (nginx's own limit is 4 x 8 KB)."""

    redact: bool = False
    """Mask personal data (ID-card, phone and bank-card numbers, e-mail addresses, licence plates) in every
    transcript unless a request says `redact=false`."""

    audit_log: Path | None = None
    """A file for the audit log (JSON lines: who sent which audio, its SHA-256, parameters, model, status,
    latencies; never the audio). Unset: no audit log."""

    audit_text: bool = False
    """Also write each transcript into the audit log (it then holds what citizens said)."""

    audit_max_mb: float = Field(default=100, gt=0)
    """The audit log is rotated at this size."""

    audit_backups: int = Field(default=30, ge=1)
    """Rotated audit files kept (audit.jsonl.1 ... .N); the oldest is deleted beyond."""

    data_dir: Path = Path.home() / ".local" / "share" / "asr_service"
    """Where the service stores audio, results and corrections (its only writable place besides the model cache and
    the audit log)."""

    retention_days: float | None = Field(default=None, gt=0)
    """Stored audio, results and corrections older than this are deleted (checked at start and every hour).
    Unset: kept until deleted by hand."""

    hotline_config: Path | None = None
    """The hotline analysis' YAML (lexicons, negations, districts, departments); sections it leaves out come from the
    default shipped with the package (`src/asr_service/hotline/default.yaml`)."""

    hotline_model: Path | None = None
    """A folder written by `asr-service hotline train`: its classifier then votes on the category with the rules."""

    repeat_window_days: int = Field(default=30, ge=1, le=3650)
    """A call is a repeat of earlier calls about the same problem at the same place within this many days (of the
    calls' own times)."""

    jobs_database_url: str | None = None
    """Where jobs are kept: unset, SQLite in `ASR_DATA_DIR/jobs.sqlite3` (one replica); `postgresql://...` for
    several replicas sharing one queue of jobs (and `ASR_DATA_DIR` on a shared volume)."""

    job_slots: int = Field(default=4, ge=1, le=64)
    """Jobs one replica transcribes at once (their segments share the batches)."""

    job_lease_seconds: float = Field(default=30, ge=3)
    """A running job's claim, renewed every third of it; a replica that dies loses its jobs to others after this."""

    job_poll_seconds: float = Field(default=2, gt=0)
    """How often an idle replica looks for jobs submitted to another replica."""

    keep_audio: bool = False
    """Keep a job's uploaded audio after it ends (the web console replays calls); retention still applies."""

    output_dir: Path | None = None
    """Every finished transcription (jobs and /asr) is saved here as `YYYY-MM-DD/<file-stem>_<id>.<ext>`."""

    output_formats: str = "json"
    """Formats saved in `ASR_OUTPUT_DIR`: any of `json,text,srt,vtt` (`txt` for text is accepted too)."""

    callback_allowed_hosts: str = ""
    """Hosts a job's `callback_url` may name, comma-separated; empty: callbacks off."""

    callback_secret: str | None = Field(default=None, repr=False)
    """Key of the HMAC-SHA256 signature on callbacks (`X-ASR-Signature`); required when callbacks are on."""

    callback_attempts: int = Field(default=6, ge=1, le=20)
    """Deliveries tried per callback before giving up (each recorded on the job)."""

    callback_first_delay_seconds: float = Field(default=2, gt=0)
    """Wait before the first retry; doubled after each failure (2, 4, 8, 16, 32 s)."""

    log_level: str = "INFO"
    """Python logging level."""

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def preprocess_threads(self) -> int:
        return self.preprocess_workers or len(os.sched_getaffinity(0))

    @property
    def jobs_url(self) -> str:
        return self.jobs_database_url or f"sqlite:///{self.data_dir / 'jobs.sqlite3'}"

    def callback_signing_secret(self) -> str:
        if not self.callback_secret:
            raise ValueError("ASR_CALLBACK_SECRET must be set when ASR_CALLBACK_ALLOWED_HOSTS turns callbacks on")
        return self.callback_secret

    @property
    def callback_hosts(self) -> frozenset[str]:
        return frozenset(host.strip().lower() for host in self.callback_allowed_hosts.split(",") if host.strip())

    @property
    def saved_formats(self) -> list[Literal["json", "text", "srt", "vtt"]]:
        from asr_service.formats import parse_formats  # formats imports the API models, which import settings' kin

        return parse_formats(self.output_formats)

    @property
    def roles(self) -> list[str]:
        return [role.strip() for role in self.channel_roles.split(",") if role.strip()]

    def server_hotwords(self) -> list[str]:
        """The terms of `hotwords_file`, checked like a request's (a bad file stops the service at start-up)."""
        if self.hotwords_file is None:
            return []
        lines = self.hotwords_file.read_text(encoding="utf-8").splitlines()
        terms = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if len(terms) > MAX_HOTWORDS:
            raise ValueError(f"{self.hotwords_file}: {len(terms)} hotwords; at most {MAX_HOTWORDS}")
        try:
            return [check_hotword(term) for term in terms]
        except ValueError as e:
            raise ValueError(f"{self.hotwords_file}: {e}") from e
