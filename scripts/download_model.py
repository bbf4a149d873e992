"""Fetch GLM-ASR-Nano-2512 into a folder on a machine with internet, and check that it loads.

    python scripts/download_model.py models/GLM-ASR-Nano-2512                # from the Hugging Face hub
    python scripts/download_model.py models/GLM-ASR-Nano-2512 --modelscope   # from ModelScope (pip install modelscope)
    python scripts/download_model.py models/GLM-ASR-Nano-2512 --verify-only  # check a folder you carried in

Then carry the folder into the air-gapped network and mount it read-only at /models/GLM-ASR-Nano-2512.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO_ID = "zai-org/GLM-ASR-Nano-2512"


def download(target: Path, revision: str | None, use_modelscope: bool) -> None:
    if use_modelscope:
        from modelscope import snapshot_download as modelscope_download

        modelscope_download(REPO_ID, revision=revision, local_dir=str(target))
    else:
        from huggingface_hub import snapshot_download

        snapshot_download(REPO_ID, revision=revision, local_dir=str(target))


def verify(folder: Path) -> dict[str, object]:
    """Load processor and weights through the service's own loading path, and transcribe one second of silence."""
    import numpy as np
    import torch

    from asr_service.engines.base import Chunk, TokenBudget
    from asr_service.engines.glm_asr import GlmAsrEngine

    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") != "glmasr":
        raise SystemExit(f"{folder}: config.json model_type is {config.get('model_type')!r}, not 'glmasr'")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float16 if device == "cuda" else torch.bfloat16
    engine = GlmAsrEngine(folder, device, dtype, TokenBudget(16, 16))
    result = engine.transcribe_batch([Chunk(np.zeros(16_000, dtype=np.float32))])[0]
    digests = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.glob("*.safetensors"))
    }
    return {"folder": str(folder), "device": device, "silence_text": result.text, "sha256": digests}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, help="folder to create (or to check, with --verify-only)")
    parser.add_argument("--revision", help="a hub revision (commit) to pin")
    parser.add_argument("--modelscope", action="store_true", help="download from ModelScope instead of the hub")
    parser.add_argument("--verify-only", action="store_true", help="only check that the folder loads")
    args = parser.parse_args(argv)
    if not args.verify_only:
        download(args.target, args.revision, args.modelscope)
    report = verify(args.target)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    print("Record these sha256 sums; check them again on the air-gapped server with --verify-only.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
