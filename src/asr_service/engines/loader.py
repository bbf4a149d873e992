"""Choose and load the engine for `ASR_MODEL`: by what the model folder contains, not by its name."""

import json
import logging
from pathlib import Path
from typing import Literal

import torch
from huggingface_hub import hf_hub_download, snapshot_download

from asr_service.config import EMBEDDED_MODEL, GLM_ASR_MODEL, Settings
from asr_service.engines.base import AsrEngine, TokenBudget
from asr_service.engines.compilation import keep_compiled_kernels_in
from asr_service.engines.glm_asr import GlmAsrEngine, GlmAsrOptions

logger = logging.getLogger(__name__)

ModelKind = Literal["glmasr", "ctranslate2"]

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def resolve_device(setting: str) -> str:
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("ASR_DEVICE=cuda but no CUDA device is visible")
    return setting


def resolve_dtype(setting: str, device: str) -> torch.dtype:
    if setting == "auto":
        return torch.float16 if device == "cuda" else torch.float32
    return _DTYPES[setting]


def resolve_model(setting: str, device: str) -> str:
    if setting == "auto":
        return GLM_ASR_MODEL if device == "cuda" else EMBEDDED_MODEL
    return setting


def detect_model_kind(model: str) -> tuple[ModelKind, Path | str]:
    """Look inside a local folder, or fetch a hub repo's config.json (from the local HF cache when offline)."""
    path = Path(model).expanduser()
    if path.is_dir():
        config_file = path / "config.json"
        if (path / "model.bin").is_file():
            return "ctranslate2", path
    else:
        config_file = Path(hf_hub_download(model, "config.json"))
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    if config.get("model_type") == "glmasr":
        return "glmasr", path if path.is_dir() else model
    if not path.is_dir() and "model_type" not in config:
        return "ctranslate2", Path(snapshot_download(model))
    raise ValueError(f"{model}: neither a GLM-ASR transformers checkpoint nor a CTranslate2 Whisper model")


def load_engine(settings: Settings) -> AsrEngine:
    device = resolve_device(settings.device)
    model = resolve_model(settings.model, device)
    budget = TokenBudget(settings.tokens_per_second, settings.min_new_tokens)
    if settings.cpu_threads:
        torch.set_num_threads(settings.cpu_threads)
    logger.info("loading model %s on %s", model, device)
    kind, location = ("ctranslate2", None) if model == EMBEDDED_MODEL else detect_model_kind(model)
    if kind == "ctranslate2":
        # Imported only here: a GPU deployment of GLM-ASR never loads CTranslate2.
        from asr_service.engines.whisper_ct2 import EMBEDDED_MODEL_NAME, WhisperEngine, assemble_embedded_model

        if location is None:
            folder, name = assemble_embedded_model(settings.cache_dir), EMBEDDED_MODEL_NAME
        else:
            folder, name = Path(location), model
        return WhisperEngine(folder, name, budget, settings.beam_size, settings.cpu_threads)
    options = GlmAsrOptions(
        encoder_window=settings.glm_encoder_window,
        features_on_device=settings.glm_features_on_device,
        compile=settings.glm_compile and device == "cuda",
        compile_prefill=settings.glm_compile_prefill and device == "cuda",
        decoder=settings.glm_decoder,
        prepare_ahead=settings.glm_prepare_ahead,
    )
    if options.compiles:
        keep_compiled_kernels_in(settings.cache_dir / "compiled")
    engine = GlmAsrEngine(location, device, resolve_dtype(settings.dtype, device), budget, options)
    largest = settings.max_batch_size or engine.profile.max_batch_size
    engine.warm_up(range(1, largest + 1) if options.compiles else [1])
    return engine
