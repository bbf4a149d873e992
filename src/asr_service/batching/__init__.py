from asr_service.batching.batcher import Batcher, BatchPolicy, SegmentOutcome

__all__ = ["BatchPolicy", "Batcher", "SegmentOutcome"]
