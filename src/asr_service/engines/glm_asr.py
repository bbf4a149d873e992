"""GLM-ASR-Nano-2512 through transformers: padded batch -> greedy generate -> text and token-probability confidence."""

import logging
from pathlib import Path

import torch
from transformers import AutoProcessor, GenerationConfig, GlmAsrForConditionalGeneration, StoppingCriteria

from asr_service.audio.decode import SAMPLE_RATE
from asr_service.engines.base import Chunk, ChunkResult, EngineProfile, TokenBudget

logger = logging.getLogger(__name__)

TRANSCRIBE_INSTRUCTION = "Please transcribe this audio into text"
"""The instruction GLM-ASR was trained with; the model's own chat template wraps it around the audio."""


def instruction_for(chunk: Chunk) -> str:
    """The user turn's text. GLM-ASR documents no hotword syntax, so terms are appended as plain context."""
    if not chunk.hotwords:
        return TRANSCRIBE_INSTRUCTION
    return f"{TRANSCRIBE_INSTRUCTION}. Terms that may occur: {', '.join(chunk.hotwords)}"


class _PerRowTokenBudget(StoppingCriteria):
    """Stops each row at its own budget, so a 2 s segment is not given the 15 s segment's allowance."""

    def __init__(self, prompt_length: int, budgets: torch.Tensor) -> None:
        self._prompt_length = prompt_length
        self._budgets = budgets

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: object) -> torch.BoolTensor:
        generated = input_ids.shape[1] - self._prompt_length
        return (self._budgets.to(input_ids.device) <= generated).to(torch.bool)


GLM_ASR_PROFILE = EngineProfile(max_segment_seconds=15.0, merge_gap_seconds=0.6, speech_pad_ms=400, max_batch_size=8)
"""GLM-ASR degrades on long segments (its authors' advice); batches of 8 fill a GPU without padding waste."""


class GlmAsrEngine:
    profile = GLM_ASR_PROFILE

    def __init__(self, model_id: str | Path, device: str, dtype: torch.dtype, budget: TokenBudget) -> None:
        self.model_name = str(model_id)
        self._device = torch.device(device)
        self._dtype = dtype
        self._budget = budget
        self._processor = AutoProcessor.from_pretrained(model_id)
        self._model = GlmAsrForConditionalGeneration.from_pretrained(model_id, dtype=dtype).to(self._device).eval()
        tokenizer = self._processor.tokenizer
        eos = self._model.generation_config.eos_token_id or self._model.config.text_config.eos_token_id
        self._eos_ids = sorted({eos} if isinstance(eos, int) else set(eos))
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._eos_ids[0]
        logger.info("GLM-ASR loaded: %s on %s (%s)", self.model_name, self._device, dtype)

    def transcribe_batch(self, chunks: list[Chunk]) -> list[ChunkResult]:
        audios = [chunk.audio for chunk in chunks]
        prompts = self._processor.apply_transcription_request(
            audio=audios, prompt=[instruction_for(chunk) for chunk in chunks], tokenize=False
        )
        inputs = self._processor(text=prompts, audio=audios, sampling_rate=SAMPLE_RATE)
        inputs = inputs.to(self._device)
        inputs["input_features"] = inputs["input_features"].to(self._dtype)
        prompt_length = inputs["input_ids"].shape[1]
        budgets = torch.tensor([self._budget.for_duration(chunk.duration) for chunk in chunks])
        config = GenerationConfig(
            do_sample=False,
            num_beams=1,
            max_new_tokens=int(budgets.max()),
            eos_token_id=self._eos_ids,
            pad_token_id=self._pad_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        try:
            with torch.inference_mode():
                out = self._model.generate(
                    **inputs,
                    generation_config=config,
                    stopping_criteria=[_PerRowTokenBudget(prompt_length, budgets)],
                )
        except torch.cuda.OutOfMemoryError:
            del inputs
            torch.cuda.empty_cache()  # give the cached blocks back before the worker retries with half the batch
            raise
        tokens = out.sequences[:, prompt_length:].cpu()
        token_logprobs = (
            torch.stack(
                [
                    torch.log_softmax(step_logits.float(), dim=-1).gather(
                        1, tokens[:, t : t + 1].to(step_logits.device)
                    )
                    for t, step_logits in enumerate(out.logits)
                ],
                dim=1,
            )
            .squeeze(-1)
            .cpu()
        )
        return [self._result(tokens[i], token_logprobs[i], int(budgets[i])) for i in range(len(chunks))]

    def _result(self, tokens: torch.Tensor, logprobs: torch.Tensor, budget: int) -> ChunkResult:
        tokens, logprobs = tokens[:budget], logprobs[:budget]
        is_eos = torch.isin(tokens, torch.tensor(self._eos_ids))
        ended = int(is_eos.nonzero()[0, 0]) if bool(is_eos.any()) else None
        scored = ended + 1 if ended is not None else tokens.shape[0]
        content = tokens[: ended if ended is not None else tokens.shape[0]]
        text = self._processor.tokenizer.decode(content.tolist(), skip_special_tokens=True).strip()
        confidence = float(logprobs[:scored].exp().mean()) if scored else 0.0
        return ChunkResult(text=text, confidence=round(confidence, 4))
