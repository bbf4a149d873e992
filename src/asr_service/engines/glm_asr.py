"""GLM-ASR-Nano-2512 through transformers: padded batch -> greedy generate -> text and token-probability confidence."""

import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from transformers import (
    AutoProcessor,
    BatchFeature,
    CompileConfig,
    GenerationConfig,
    GlmAsrForConditionalGeneration,
    LogitsProcessor,
    StoppingCriteria,
)

from asr_service.audio import SAMPLE_RATE
from asr_service.config import MAX_BATCH_SIZE
from asr_service.engines.base import Chunk, ChunkResult, EngineProfile, TokenBudget
from asr_service.engines.compilation import allow_graphs
from asr_service.engines.greedy_loop import GreedyLoop, greedy_choice, unsupported_reason
from asr_service.engines.log_mel import SegmentLogMel

logger = logging.getLogger(__name__)

ATTENTION = "sdpa"
"""PyTorch's scaled-dot-product attention, in both towers. On a GPU it picks a fused kernel per call: the audio
encoder attends without a mask, so FlashAttention's; the language model's padded prompts and its cache carry a mask,
so one that takes a mask (memory-efficient or cuDNN attention). transformers' `flash_attention_2` needs the
flash-attn package, published as source only: it builds against the exact torch and CUDA at install time (or fetches
a wheel from GitHub), which an offline server cannot count on."""

TRANSCRIBE_INSTRUCTION = "Please transcribe this audio into text"
"""The instruction GLM-ASR was trained with; the model's own chat template wraps it around the audio."""


def instruction_for(chunk: Chunk) -> str:
    """The user turn's text. GLM-ASR documents no hotword syntax, so terms are appended as plain context."""
    if not chunk.hotwords:
        return TRANSCRIBE_INSTRUCTION
    return f"{TRANSCRIBE_INSTRUCTION}. Terms that may occur: {', '.join(chunk.hotwords)}"


class _PerRowTokenBudget(StoppingCriteria):
    """Stops each row at its own budget, so a 2 s segment is not given the 15 s segment's allowance. The budgets
    live on the model's device: a copy from the host every step would make the host wait for the device."""

    def __init__(self, prompt_length: int, budgets: torch.Tensor) -> None:
        self._prompt_length = prompt_length
        self._budgets = budgets

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self._prompt_length
        return self._budgets <= generated


class _ChosenTokenLogProbs(LogitsProcessor):
    """Records, per step, the log-probability of the token greedy decoding picks (the highest score), as a
    (batch,) tensor on the device: two reductions instead of keeping every step's full-vocabulary logits.
    Must be the last processor, so that the highest score it sees is the one picked. Also notes, by `clock`, when
    the first step's scores arrive: the end of the prefill."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.steps: list[torch.Tensor] = []
        self.first_step_at: float | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.first_step_at is None:
            self.first_step_at = self._clock()
        self.steps.append(greedy_choice(scores)[1])
        return scores


@dataclass(frozen=True)
class GlmAsrOptions:
    """How the model path runs; each choice is measured in `scripts/bench_gpu.py` (README, "GPU throughput")."""

    encoder_window: Literal["full", "trim"] = "full"
    """`full` pads every segment to the encoder's 30-second window, as the processor and the model's training do;
    `trim` pads a batch only to its longest segment (rounded to 80 ms), which halves the encoder's work on
    15-second segments but changes what the encoder attends to (no padding frames), so results can differ."""
    features_on_device: bool = False
    """Compute log-mel features on the model's device (torch STFT) rather than on the CPU."""
    compile: bool = False
    """Decode with a static KV cache and a `torch.compile`d step (CUDA graphs): one compilation per batch size,
    at start-up when `warm_up` is called, then far fewer kernel launches per token. `generate` compiles on CUDA
    only; the loop compiles on any device (the tests compile it on the CPU)."""
    compile_prefill: bool = False
    """With the loop: also compile the prefill (audio encoder, projector, prompt through the language model), once
    for every prompt length and for all batch sizes but a few (dynamic shapes). `generate` does not use it."""
    max_cache_tokens: int = 1024
    """Static cache length (prompt + generated tokens); a batch that needs more runs without compilation."""
    decoder: Literal["generate", "loop"] = "generate"
    """`generate`: transformers' `generate`, which waits for the device after every token; `loop`: our greedy
    loop (`greedy_loop.py`), the same tokens with the device given whole steps and asked to stop only every few
    steps. `compile` compiles whichever decodes."""
    prepare_ahead: bool = True
    """`prepare` computes each segment's features and prompt tokens when it is found (on a preprocessing thread),
    so a batch only stacks them; applies with the full window and features on the CPU (otherwise a segment's
    features depend on its batch, or belong on the device)."""

    @property
    def compiles(self) -> bool:
        """Whether anything is compiled: then calls run in one thread, the kernel cache is kept and start-up warms
        up every batch size. The prefill is compiled only by the loop."""
        return self.compile or (self.compile_prefill and self.decoder == "loop")


@dataclass(frozen=True)
class _PreparedInputs:
    """One segment's model inputs, computed ahead of its batch, as the processor gives them for a batch of one.
    Kept compact while the segment waits in the queue: the feature frames past the speech (the window's padding)
    all equal the last frame, so only the frames before them are kept, with that last frame."""

    owner: "GlmAsrEngine"
    input_ids: torch.Tensor
    """(prompt tokens,) without padding."""
    features: torch.Tensor
    """(mel bins, frames up to the padding), in the model's dtype."""
    last_frame: torch.Tensor
    """(mel bins,): the value of every frame after `features`."""
    features_mask: torch.Tensor
    """(window frames,) as the processor gives it."""


GLM_ASR_PROFILE = EngineProfile(max_segment_seconds=15.0, merge_gap_seconds=0.6, speech_pad_ms=400, max_batch_size=8)
"""GLM-ASR degrades on long segments (its authors' advice); batches of 8 fill a GPU without padding waste."""


_TRIM_MULTIPLE = 1280
"""Samples (80 ms) a trimmed window is a multiple of: 8 mel frames, which the encoder's stride-2 convolution and
4-frame merge turn into whole audio tokens."""


class _EncoderTimer:
    """Times the audio encoder inside `generate` (forward hooks reading `clock`), for benchmarks."""

    def __init__(self, model: GlmAsrForConditionalGeneration, clock: Callable[[], float], enabled: bool) -> None:
        self._tower = model.model.audio_tower
        self._clock = clock
        self._enabled = enabled
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._started = 0.0
        self.total = 0.0

    def __enter__(self) -> "_EncoderTimer":
        if self._enabled:
            self._handles = [
                self._tower.register_forward_pre_hook(lambda *_: self._start()),
                self._tower.register_forward_hook(lambda *_: self._stop()),
            ]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()

    def _start(self) -> None:
        self._started = self._clock()

    def _stop(self) -> None:
        self.total += self._clock() - self._started


class GlmAsrEngine:
    profile = GLM_ASR_PROFILE

    def __init__(
        self,
        model_id: str | Path,
        device: str,
        dtype: torch.dtype,
        budget: TokenBudget,
        options: GlmAsrOptions = GlmAsrOptions(),
    ) -> None:
        self.model_name = str(model_id)
        self._device = torch.device(device)
        self._dtype = dtype
        self._budget = budget
        self.options = options
        self._graph_thread = (
            ThreadPoolExecutor(1, "glm-asr-graphs", initializer=allow_graphs, initargs=(MAX_BATCH_SIZE,))
            if options.compiles
            else None
        )
        """Compiled CUDA graphs keep their state in the thread that recorded them, and the batching worker calls
        the engine from a pool of threads: with a compilation, every call runs in this one thread, which may keep
        a compiled step for every batch size the service allows."""
        self.stage_seconds: dict[str, float] | None = None
        """Set to a dict to have each call add its seconds per stage (features, encoder, prefill, decode) to it;
        the stages are then timed with device synchronisation, so only benchmarks do it."""
        self._processor = AutoProcessor.from_pretrained(model_id)
        self._model = (
            GlmAsrForConditionalGeneration.from_pretrained(model_id, dtype=dtype, attn_implementation=ATTENTION)
            .to(self._device)
            .eval()
        )
        features_device = self._device if options.features_on_device else torch.device("cpu")
        self._processor.feature_extractor = SegmentLogMel(self._processor.feature_extractor, features_device)
        self._prepares_ahead = (
            options.prepare_ahead and options.encoder_window == "full" and not options.features_on_device
        )
        tokenizer = self._processor.tokenizer
        eos = self._model.generation_config.eos_token_id or self._model.config.text_config.eos_token_id
        self._eos_ids = sorted({eos} if isinstance(eos, int) else set(eos))
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._eos_ids[0]
        self._loop = self._greedy_loop() if options.decoder == "loop" else None
        if options.compile_prefill and self._loop is None:
            logger.warning("GLM-ASR's prefill is compiled only by the greedy loop; generate runs it uncompiled")
        logger.info(
            "GLM-ASR loaded: %s on %s (%s, attention: %s)",
            self.model_name,
            self._device,
            dtype,
            ", ".join(f"{tower} {kernel}" for tower, kernel in self.attention.items()),
        )

    @property
    def attention(self) -> dict[str, str]:
        """The attention implementation each tower runs, as loaded: a checkpoint's config or a transformers
        release may differ from what was asked for, and eager attention would cost the GPU several times more."""
        config = self._model.config
        return {
            "audio encoder": config.audio_config._attn_implementation,
            "language model": config.text_config._attn_implementation,
        }

    def _greedy_loop(self) -> GreedyLoop | None:
        config = self._model.generation_config
        if reason := unsupported_reason(config):
            logger.warning("GLM-ASR decodes with generate, not the greedy loop: %s", reason)
            return None
        return GreedyLoop(
            self._model,
            self._eos_ids,
            list(config.suppress_tokens or []),
            compile=self.options.compile,
            compile_prefill=self.options.compile_prefill,
            max_cache_tokens=self.options.max_cache_tokens,
        )

    def prepare(self, chunks: list[Chunk]) -> list[Chunk]:
        """Each chunk with its inputs computed (`_PreparedInputs`), on the calling preprocessing thread; unchanged
        when this engine prepares nothing ahead, for a segment longer than one encoder window (the processor
        splits it), or if the processor fails (the batch then runs it, and reports the failure per segment)."""
        if not self._prepares_ahead or not chunks:
            return chunks
        try:
            inputs = self._process(chunks)
        except Exception:
            logger.warning("preparing %d segment(s) ahead failed; their batch will", len(chunks), exc_info=True)
            return chunks
        if inputs["input_features"].shape[0] != len(chunks):
            return chunks
        return [dataclasses.replace(chunk, prepared=self._compact(inputs, row)) for row, chunk in enumerate(chunks)]

    def _compact(self, inputs: BatchFeature, row: int) -> _PreparedInputs:
        features = inputs["input_features"][row].to(self._dtype)
        last_frame = features[:, -1]
        differs = (features != last_frame[:, None]).any(dim=0).nonzero()
        kept = int(differs[-1, 0]) + 1 if differs.numel() else 0
        return _PreparedInputs(
            owner=self,
            input_ids=inputs["input_ids"][row][inputs["attention_mask"][row].bool()].clone(),
            features=features[:, :kept].clone(),
            last_frame=last_frame.clone(),
            features_mask=inputs["input_features_mask"][row].clone(),
        )

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        if self._graph_thread is not None:
            return self._graph_thread.submit(self._transcribe_batch, chunks).result()
        return self._transcribe_batch(chunks)

    def _transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        started = self._mark()
        inputs = self._inputs(chunks)
        features_done = self._mark()
        budgets = [self._budget.for_duration(chunk.duration) for chunk in chunks]
        # A compiled prefill runs the encoder inside its compiled code, where the timer's hooks cannot run: its
        # time is then counted in the prefill's.
        timed = self.stage_seconds is not None and not (self._loop is not None and self._loop.compiles_prefill)
        encoder_seconds = _EncoderTimer(self._model, self._mark, enabled=timed)
        try:
            with encoder_seconds:
                if self._loop is not None:
                    rows = self._loop.decode(inputs, budgets, self._mark)
                    tokens, token_logprobs, first = rows.tokens, rows.logprobs, rows.prefill_done_at
                else:
                    tokens, token_logprobs, first = self._generate(inputs, budgets)
        except torch.cuda.OutOfMemoryError:
            del inputs
            torch.cuda.empty_cache()  # give the cached blocks back before the worker retries with half the batch
            raise
        if self.stage_seconds is not None:
            ended = self._mark()
            first = first or ended
            for stage, seconds in (
                ("features", features_done - started),
                ("encoder", encoder_seconds.total),
                ("prefill", first - features_done - encoder_seconds.total),
                ("decode", ended - first),
            ):
                self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds
        return [self._result(tokens[i], token_logprobs[i], budgets[i]) for i in range(len(chunks))]

    def _generate(
        self, inputs: dict[str, torch.Tensor], budgets: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor, float | None]:
        """Greedy `generate`: generated tokens and their log-probabilities on the CPU, and when the prefill ended."""
        prompt_length = inputs["input_ids"].shape[1]
        confidence = _ChosenTokenLogProbs(self._mark)
        row_budgets = torch.tensor(budgets, device=self._device)
        with torch.inference_mode():
            sequences = self._model.generate(
                **inputs,
                generation_config=self._generation_config(prompt_length, max(budgets)),
                logits_processor=[confidence],
                stopping_criteria=[_PerRowTokenBudget(prompt_length, row_budgets)],
            )
        tokens = sequences[:, prompt_length:].cpu()
        return tokens, torch.stack(confidence.steps, dim=1).float().cpu(), confidence.first_step_at

    def warm_up(self, batch_sizes: Iterable[int]) -> None:
        """Run one batch of each size, so compilation (one graph per batch size) and CUDA's lazy set-up happen
        before the service says it is ready, not on a caller's request."""
        silence = Chunk(np.zeros(SAMPLE_RATE, dtype=np.float32))
        for size in batch_sizes:
            self.transcribe_batch([silence] * size)

    def _inputs(self, chunks: list[Chunk]) -> dict[str, torch.Tensor]:
        """The batch's inputs on the model's device: stacked from the chunks' prepared inputs when every chunk has
        them, from the processor otherwise (equal either way: `tests/test_glm_model_path.py`)."""
        prepared = [chunk.prepared for chunk in chunks]
        if all(isinstance(row, _PreparedInputs) and row.owner is self for row in prepared):
            return self._stack(prepared)  # type: ignore[arg-type]
        inputs = self._process(chunks).to(self._device)
        inputs["input_features"] = inputs["input_features"].to(self._dtype)
        return inputs

    def _process(self, chunks: list[Chunk]) -> BatchFeature:
        """The processor's batch for these chunks, on the CPU (features on the device with `features_on_device`).
        Called from the worker and from preprocessing threads at once (`prepare`): the feature extractor keeps no
        state, and the tokenizer is used the same way by every call (tested on many threads)."""
        processor = self._processor
        audios = [chunk.audio for chunk in chunks]
        prompts = processor.apply_transcription_request(
            audio=audios, prompt=[instruction_for(chunk) for chunk in chunks], tokenize=False
        )
        audio_kwargs: dict[str, object] = {}
        window_seconds = processor.feature_extractor.chunk_length  # the encoder's window, 30 s
        if self.options.encoder_window == "trim" and max(chunk.duration for chunk in chunks) <= window_seconds:
            audio_kwargs |= {"padding": "longest", "pad_to_multiple_of": _TRIM_MULTIPLE}
        return processor(text=prompts, audio=audios, sampling_rate=SAMPLE_RATE, audio_kwargs=audio_kwargs)

    def _stack(self, rows: list[_PreparedInputs]) -> dict[str, torch.Tensor]:
        """The processor's padded batch rebuilt from prepared rows: prompts padded on the left, as the processor
        pads them; each row's padding frames restored. On CUDA the features are stacked in pinned memory, so
        their copy to the GPU does not hold up the host."""
        length = max(row.input_ids.shape[0] for row in rows)
        input_ids = torch.full((len(rows), length), self._processor.tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
        bins, frames = rows[0].last_frame.shape[0], rows[0].features_mask.shape[0]
        pinned = self._device.type == "cuda"
        features = torch.empty((len(rows), bins, frames), dtype=self._dtype, pin_memory=pinned)
        for i, row in enumerate(rows):
            tokens, kept = row.input_ids.shape[0], row.features.shape[1]
            input_ids[i, length - tokens :] = row.input_ids
            attention_mask[i, length - tokens :] = 1
            features[i, :, :kept] = row.features
            features[i, :, kept:] = row.last_frame[:, None]
        batch = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "input_features": features,
            "input_features_mask": torch.stack([row.features_mask for row in rows]),
        }
        return {key: value.to(self._device, non_blocking=pinned) for key, value in batch.items()}

    def _generation_config(self, prompt_length: int, max_new_tokens: int) -> GenerationConfig:
        """The checkpoint's own generation settings, made greedy, with our budget and end tokens."""
        config = copy.deepcopy(self._model.generation_config)
        config.update(
            do_sample=False,
            num_beams=1,
            max_new_tokens=max_new_tokens,
            min_new_tokens=None,
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
            return_dict_in_generate=False,
            output_logits=False,
            output_scores=False,
        )
        fits_cache = prompt_length + max_new_tokens <= self.options.max_cache_tokens
        if self.options.compile and self._device.type == "cuda" and fits_cache:
            config.update(
                cache_implementation="static",
                max_cache_len=self.options.max_cache_tokens,
                compile_config=CompileConfig(fullgraph=False, dynamic=False, mode="reduce-overhead"),
            )
        else:
            config.update(cache_implementation=None, disable_compile=True)
        return config

    def _mark(self) -> float:
        """Now; when stages are timed, after the device has finished what was queued."""
        if self.stage_seconds is not None and self._device.type == "cuda":
            torch.cuda.synchronize(self._device)
        return time.perf_counter()

    def _result(self, tokens: torch.Tensor, logprobs: torch.Tensor, budget: int) -> ChunkResult:
        tokens, logprobs = tokens[:budget], logprobs[:budget]
        is_eos = torch.isin(tokens, torch.tensor(self._eos_ids))
        ended = int(is_eos.nonzero()[0, 0]) if bool(is_eos.any()) else None
        scored = ended + 1 if ended is not None else tokens.shape[0]
        content = tokens[: ended if ended is not None else tokens.shape[0]]
        text = self._processor.tokenizer.decode(content.tolist(), skip_special_tokens=True).strip()
        confidence = float(logprobs[:scored].exp().mean()) if scored else 0.0
        return ChunkResult(text=text, confidence=round(confidence, 4))
