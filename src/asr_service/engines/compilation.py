"""What `torch.compile` needs from the process to serve well: a kernel cache that outlives the process, and room
for one graph per batch size.

Neither belongs to one engine: the cache is an environment variable of the process, set by the loader before the
first compilation; the limit is a Dynamo setting of the thread that runs the compiled code, set when that thread
starts.
"""

import logging
import os
import stat
from pathlib import Path

import torch
from torch._inductor.runtime.cache_dir_utils import default_cache_dir

logger = logging.getLogger(__name__)

INDUCTOR_CACHE_VARIABLE = "TORCHINDUCTOR_CACHE_DIR"
"""Where Inductor keeps compiled graphs and, beneath it, Triton's kernels; read at each compilation."""


def keep_compiled_kernels_in(folder: Path) -> Path:
    """Point the compilers' caches at `folder` (unless the operator chose a `TORCHINDUCTOR_CACHE_DIR`), so a restarted
    service loads the kernels compiled before instead of compiling them again. Their default, a folder in /tmp, is
    lost with every container. The folder holds code the service loads and runs: it is created private to the
    service's user, and a folder others may write to is reported, since anyone who can write there can run code in
    the service."""
    current = os.environ.get(INDUCTOR_CACHE_VARIABLE)
    if current is None or Path(current) == Path(default_cache_dir()):
        # Unset, or set to its default by torch itself: importing transformers' models makes Inductor fill it in.
        os.environ[INDUCTOR_CACHE_VARIABLE] = str(folder)
    chosen = Path(os.environ[INDUCTOR_CACHE_VARIABLE])
    chosen.mkdir(mode=0o700, parents=True, exist_ok=True)
    if chosen.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        logger.warning(
            "the compiled-kernel cache %s is writable by other users: whoever can write there can run code in the "
            "service; make it private to the service's user (chmod 700)",
            chosen,
        )
    logger.info("compiled kernels are cached in %s", chosen)
    return chosen


def allow_graphs(count: int) -> None:
    """Let Dynamo keep at least `count` compiled versions of one function, in the calling thread (Dynamo's
    settings are per thread: call it in the thread that runs the compiled code). The decoding step compiles once
    per batch size; past Dynamo's default limit of 8 it silently runs the other sizes uncompiled, so a service with
    `ASR_MAX_BATCH_SIZE` above 8 would decode its largest batches slowest."""
    config = torch._dynamo.config
    config.recompile_limit = max(config.recompile_limit, count)
