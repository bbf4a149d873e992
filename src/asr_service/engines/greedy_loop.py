"""Greedy decoding for GLM-ASR in our own loop: what `generate` computes, without its host work between steps.

`generate` makes the host wait for the device after every token (it reads whether all rows have ended), and runs
its Python bookkeeping (inputs, masks, logits processors, stopping criteria) between steps, so on a GPU each step
costs the sum of the host's and the device's time. This loop gives the device a whole step at once (the language
model on one token per row, the suppression of barred tokens, the argmax and the chosen token's log-probability) and
asks only every `check_every` steps whether every row has ended, so the host queues steps ahead of the device. With
`compile`, that step is compiled (CUDA graphs on a GPU) with a static KV cache kept per batch size; it compiles
whole, without graph breaks (tested), but a break on another device would only cost speed, not fail. With
`compile_prefill`, the prefill (audio encoder, projector and the prompt through the language model) is compiled too,
once for every prompt length (dynamic shapes, no CUDA graphs: its kernels are large enough that launching them is
not what costs).

It computes the same thing as greedy `generate` with the checkpoint's generation config (tests compare tokens and
confidence on real recordings): the same prompt positions (left padding counted out), the same cache, the same
scores. Rows that end early keep decoding until the whole batch stops; their extra tokens are cut off by the caller
at the row's end token or budget, as `generate`'s padding tokens are. A generation config that asks for more than
suppressing tokens (penalties, n-gram bans) is not supported: `unsupported_reason` says why, and the engine then
uses `generate`.
"""

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, GlmAsrForConditionalGeneration, StaticCache

_NEUTRAL: dict[str, object] = {
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "force_words_ids": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "exponential_decay_length_penalty": None,
    "renormalize_logits": False,
    "min_length": 0,
    "min_new_tokens": None,
    "guidance_scale": None,
    "watermarking_config": None,
}
"""Generation settings that would add a logits processor or a constraint this loop does not apply, at their values
that add none. Suppressed tokens (`suppress_tokens`) are applied; sampling and beams are not greedy decoding."""


def unsupported_reason(config: GenerationConfig) -> str | None:
    """Why greedy `generate` with this config would compute something this loop does not; None if it would not."""
    for name, neutral in _NEUTRAL.items():
        value = getattr(config, name, neutral)
        if value is not None and value != neutral:
            return f"the generation config sets {name}={value!r}"
    return None


_Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, StaticCache], tuple[torch.Tensor, torch.Tensor]]
"""One decoding step: (token, position, mask, cache) -> (next token, its log-probability), per row."""

_Prefill = Callable[
    [Mapping[str, torch.Tensor], torch.Tensor, torch.Tensor, StaticCache], tuple[torch.Tensor, torch.Tensor]
]
"""The prompt into the cache: (inputs, mask, positions, cache) -> (first token, its log-probability), per row."""


@dataclass(frozen=True)
class DecodedRows:
    tokens: torch.Tensor
    """(batch, steps) token ids on the CPU; a row's tokens after its end token or budget are meaningless."""
    logprobs: torch.Tensor
    """(batch, steps) float32 log-probability of each chosen token, on the CPU."""
    prefill_done_at: float
    """When the first token was chosen, by the caller's clock."""


class GreedyLoop:
    def __init__(
        self,
        model: GlmAsrForConditionalGeneration,
        end_ids: list[int],
        suppress_ids: list[int],
        *,
        compile: bool = False,
        compile_prefill: bool = False,
        max_cache_tokens: int = 1024,
        check_every: int = 8,
    ) -> None:
        self._model = model
        self._device = model.device
        self._end_ids = torch.tensor(end_ids, device=self._device)
        vocab = model.config.text_config.vocab_size
        self._bias = torch.zeros(vocab, device=self._device)
        """Added to every step's scores: -inf on suppressed tokens, as `generate`'s suppression does."""
        if suppress_ids:
            self._bias[torch.tensor(suppress_ids, device=self._device)] = -math.inf
        self._max_cache_tokens = max_cache_tokens
        self._check_every = check_every
        self._caches: dict[int, StaticCache] = {}
        """With either compilation: one cache per batch size, reused (reset) so compiled code finds the same
        tensors."""
        self._compiled_step = (
            torch.compile(self._decode_step, mode="reduce-overhead", fullgraph=False, dynamic=False)
            if compile
            else None
        )
        self._compiled_prefill = (
            torch.compile(self._merged_prefill, fullgraph=False, dynamic=True) if compile_prefill else None
        )

    @property
    def compiles_prefill(self) -> bool:
        """Whether the encoder runs inside compiled code (where hooks on it, as the stage timer's, cannot run)."""
        return self._compiled_prefill is not None

    @torch.inference_mode()
    def decode(
        self, inputs: Mapping[str, torch.Tensor], budgets: list[int], clock: Callable[[], float] = time.perf_counter
    ) -> DecodedRows:
        """Greedy tokens for a padded batch (the processor's output on the model's device), each row for at most
        its budget, stopping once every row has produced an end token or used its budget. `clock` stamps the end
        of the prefill (a synchronising one when stages are timed)."""
        prompt_mask = inputs["attention_mask"]
        rows, prompt_length = prompt_mask.shape
        steps = max(budgets)
        cache, cache_length, prefill, next_step = self._cache(rows, prompt_length + steps, inputs)
        # One mask for every step: the prompt's (left padding masked out), then ones; causality hides what is
        # not yet written. Positions count from each row's first real token, as `generate`'s do.
        mask = torch.ones(rows, cache_length, dtype=prompt_mask.dtype, device=self._device)
        mask[:, :prompt_length] = prompt_mask
        positions = (prompt_mask.long().cumsum(-1) - 1).masked_fill(prompt_mask == 0, 0)
        token, logprob = prefill(inputs, mask, positions, cache)
        prefill_done_at = clock()
        position = positions[:, -1:] + 1
        limits = torch.tensor(budgets, device=self._device)
        tokens, logprobs = [token], [logprob]
        ended = torch.isin(token, self._end_ids) | (limits <= 1)
        for step in range(1, steps):
            if step % self._check_every == 0 and bool(ended.all()):
                break  # the host waits for the device here, once per `check_every` steps
            token, logprob = next_step(token, position, mask, cache)
            position = position + 1
            tokens.append(token)
            logprobs.append(logprob)
            ended = ended | torch.isin(token, self._end_ids) | (limits <= step + 1)
        return DecodedRows(torch.stack(tokens, 1).cpu(), torch.stack(logprobs, 1).float().cpu(), prefill_done_at)

    def _cache(
        self, rows: int, needed: int, inputs: Mapping[str, torch.Tensor]
    ) -> tuple[StaticCache, int, _Prefill, _Step]:
        """A cache for this batch, its length, and the prefill and step to decode on it. With a compilation: the
        cache kept for this batch size, reset, and the compiled prefill and step (each if asked for), the prefill
        only when each row holds one segment's single encoder window (its placeholders then take its own audio
        embeddings, which `_merged_prefill` relies on; a segment longer than the window has two feature rows).
        Otherwise, or for a batch that needs more: a new cache, the model's own prefill and the uncompiled step,
        so an odd batch never makes anything compile again."""
        config = self._model.config.text_config
        compiled = self._compiled_step is not None or self._compiled_prefill is not None
        if not compiled or needed > self._max_cache_tokens:
            return StaticCache(config=config, max_cache_len=needed), needed, self._model_prefill, self._decode_step
        cache = self._caches.get(rows)
        if cache is None:
            cache = self._caches[rows] = StaticCache(config=config, max_cache_len=self._max_cache_tokens)
            # Allocated here, not by the first prefill: allocating inside compiled code would leave it to the graph.
            head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
            cache.early_initialization(rows, config.num_key_value_heads, head_dim, self._model.dtype, self._device)
        else:
            cache.reset()
        one_window_per_row = inputs["input_features"].shape[0] == rows
        compiled_prefill = self._compiled_prefill is not None and one_window_per_row
        return (
            cache,
            self._max_cache_tokens,
            self._compiled_merged_prefill if compiled_prefill else self._model_prefill,
            self._replay_step if self._compiled_step is not None else self._decode_step,
        )

    def _model_prefill(
        self, inputs: Mapping[str, torch.Tensor], mask: torch.Tensor, positions: torch.Tensor, cache: StaticCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self._model(
            **{key: value for key, value in inputs.items() if key != "attention_mask"},
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        ).logits
        return self._choose(logits[:, -1])

    def _compiled_merged_prefill(
        self, inputs: Mapping[str, torch.Tensor], mask: torch.Tensor, positions: torch.Tensor, cache: StaticCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The compiled `_merged_prefill`, given tensors only (a mapping's type would be guarded on: the processor
        gives a `BatchFeature`, prepared inputs a dict)."""
        assert self._compiled_prefill is not None
        return self._compiled_prefill(inputs["input_ids"], inputs["input_features"], mask, positions, cache)

    def _merged_prefill(
        self,
        input_ids: torch.Tensor,
        features: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: StaticCache,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's forward on the prompt, but placing the audio embeddings with a gather: row r's k-th audio
        placeholder takes row r's k-th embedding. The model selects the valid embeddings with a boolean mask (a
        data-dependent size, which splits a compiled graph) and scatters them in order; with one window per row,
        each row holding exactly its window's valid count of placeholders (the processor's output), both place
        the same embedding at every placeholder (tested against the model's forward)."""
        glm, config = self._model.model, self._model.config
        embeds = glm.get_input_embeddings()(input_ids)
        audio = glm.audio_tower(features).last_hidden_state
        audio = glm.multi_modal_projector(audio.reshape(features.shape[0], -1, config.audio_config.intermediate_size))
        is_audio = input_ids == config.audio_token_id
        # Clamped: an index past the window would be a device-side assert on CUDA, fatal to every later batch.
        index = (is_audio.long().cumsum(-1) - 1).clamp(0, audio.shape[1] - 1)
        placed = audio.gather(1, index[..., None].expand(-1, -1, audio.shape[-1])).to(embeds.dtype)
        hidden = glm.language_model(
            inputs_embeds=torch.where(is_audio[..., None], placed, embeds),
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        ).last_hidden_state
        return self._choose(self._model.lm_head(hidden[:, -1]))

    def _replay_step(
        self, token: torch.Tensor, position: torch.Tensor, mask: torch.Tensor, cache: StaticCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The compiled step. A CUDA graph's outputs live in buffers its next replay overwrites: each call starts a
        new step and keeps copies."""
        assert self._compiled_step is not None
        torch.compiler.cudagraph_mark_step_begin()
        token, logprob = self._compiled_step(token, position, mask, cache)
        return token.clone(), logprob.clone()

    def _decode_step(
        self, token: torch.Tensor, position: torch.Tensor, mask: torch.Tensor, cache: StaticCache
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self._model(
            input_ids=token[:, None], attention_mask=mask, position_ids=position, past_key_values=cache, use_cache=True
        ).logits
        return self._choose(logits[:, -1])

    def _choose(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The greedy token and its log-probability among the scores `generate` would see (float32, suppressed)."""
        return greedy_choice(logits.float() + self._bias)


def greedy_choice(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the highest-scoring token (the first on a tie, as argmax) and its log-probability: two reductions,
    no full-vocabulary softmax kept. The confidence of both decoders is built from this log-probability."""
    best = scores.max(dim=-1)
    return best.indices, best.values - torch.logsumexp(scores, dim=-1)
